"""Item features for the committee and the diversity step.

- Character n-gram hashing (the default): script-agnostic, no model, no vocabulary to
  fit, so Thai, Amharic and German items get features the same way and a new language
  needs nothing.
- Mean-pooled embeddings from a local `transformers` encoder, loaded by path (never
  downloaded), batched, on CUDA when present, cached per item and encoder id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from scipy import sparse

HASHING_FEATURES = 2**18
HASHING_NGRAMS = (2, 4)
PROJECTION_DIMS = 64


def item_feature_text(*, response: str, response_a: str = "", response_b: str = "") -> str:
    """The text a feature describes: the model output (both outputs for a pairwise item)."""
    if response:
        return response
    return f"{response_a}\n{response_b}".strip()


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MIX = np.uint64(0xFF51AFD7ED558CCD)


def _mix(h: np.ndarray) -> np.ndarray:
    """Finalise a hash so its low bits are well spread (MurmurHash3's fmix64, first half)."""
    h = h ^ (h >> np.uint64(33))
    h = h * _MIX
    return h ^ (h >> np.uint64(29))


def ngram_hash(ngram: str, *, n_features: int = HASHING_FEATURES) -> int:
    """The column of one n-gram: FNV-1a over its code points, mixed. `hashing_features`
    computes exactly this for every n-gram of a corpus at once."""
    h = np.array([_FNV_OFFSET ^ np.uint64(len(ngram))], dtype=np.uint64)
    with np.errstate(over="ignore"):
        for ch in ngram:
            h = (h ^ np.uint64(ord(ch))) * _FNV_PRIME
        return int(_mix(h)[0] % np.uint64(n_features))


def hashing_features(
    texts: Sequence[str], *, n_features: int = HASHING_FEATURES
) -> sparse.csr_matrix:
    """L2-normalised counts of hashed character n-grams inside word boundaries.

    The n-grams are scikit-learn's ``analyzer="char_wb"`` ones (lowercased, each word
    padded with one space on each side, no n-gram across words; a word shorter than n
    gives no n-gram of that length), so scripts without spaces simply form long words.
    The hashing is done for the whole corpus at once in numpy rather than n-gram by
    n-gram in Python as HashingVectorizer does: the same features at a fraction of the
    cost (bench/al.py measures a round's featurising).
    """
    n_docs = len(texts)
    if n_docs == 0:
        return sparse.csr_matrix((0, n_features), dtype=np.float32)
    docs = [" " + " ".join(str(t).lower().replace("\x00", " ").split()) + " " for t in texts]
    joined = "\x00".join(docs)
    points = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    doc_of = np.repeat(np.arange(n_docs, dtype=np.int64), [len(d) + 1 for d in docs])[: len(points)]
    space = points == 32
    separator = points == 0
    rows, cols = [], []
    lo, hi = HASHING_NGRAMS
    with np.errstate(over="ignore"):
        for n in range(lo, hi + 1):
            m = len(points) - n + 1
            if m <= 0:
                continue
            h = np.full(m, _FNV_OFFSET ^ np.uint64(n), dtype=np.uint64)
            invalid = np.zeros(m, dtype=bool)
            for j in range(n):
                h = (h ^ points[j : j + m]) * _FNV_PRIME
                invalid |= separator[j : j + m]
                if 0 < j < n - 1:
                    invalid |= space[j : j + m]  # crosses a word boundary
            if n == 2:
                # The padding of an empty document ("  ") is no n-gram.
                invalid |= space[:m] & space[1 : 1 + m]
            keep = ~invalid
            rows.append(doc_of[:m][keep])
            cols.append((_mix(h[keep]) % np.uint64(n_features)).astype(np.int64))
    row = np.concatenate(rows)
    col = np.concatenate(cols)
    matrix = sparse.csr_matrix(
        (np.ones(len(row), dtype=np.float32), (row, col)),
        shape=(n_docs, n_features),
        dtype=np.float32,
    )
    matrix.sum_duplicates()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1
    return sparse.csr_matrix(sparse.diags(1 / norms).astype(np.float32) @ matrix)


def project_dense(features: Any, *, dims: int = PROJECTION_DIMS, seed: int = 0) -> np.ndarray:
    """A small dense view of the features for distances (k-center, clustering).

    A sparse random projection keeps pairwise distances within a small factor
    (Johnson–Lindenstrauss, Achlioptas 2003) at a fraction of the cost.
    """
    if not sparse.issparse(features):
        features = np.asarray(features, dtype=np.float32)
        if features.shape[1] <= dims:
            return features
    projected = features @ _projection(features.shape[1], dims, seed)
    return np.asarray(
        projected.toarray() if sparse.issparse(projected) else projected, dtype=np.float32
    )


@lru_cache(maxsize=8)
def _projection(n_features: int, dims: int, seed: int) -> sparse.csr_matrix:
    """The random projection matrix (made once per shape and seed, not once per language)."""
    from sklearn.random_projection import SparseRandomProjection

    projector = SparseRandomProjection(n_components=dims, random_state=seed, dense_output=True)
    projector.fit(np.zeros((1, n_features), dtype=np.float32))
    return sparse.csr_matrix(projector.components_.T, dtype=np.float32)


# ---------------------------------------------------------------------------------------
# Local transformers encoder
# ---------------------------------------------------------------------------------------


def model_path_check(path: str | Path | None, *, field: str, what: str) -> Path:
    """The model folder, or a ValidationError that names the missing path."""
    if not path:
        raise ValidationError(
            {field: [f"no {what} path is configured; set it in settings or pass it"]}
        )
    folder = Path(path)
    if not folder.is_dir():
        raise ValidationError(
            {field: [f"{what} path {str(folder)!r} does not exist or is not a folder"]}
        )
    if not (folder / "config.json").is_file():
        raise ValidationError(
            {field: [f"{what} path {str(folder)!r} has no config.json; save the model there first"]}
        )
    return folder


def model_id(path: Path) -> str:
    """Folder name plus a digest of config.json and the weight files' size, head and tail:
    cheap to compute on a 1 GB model, and it changes whenever the weights do."""
    digest = hashlib.sha256((path / "config.json").read_bytes())
    for weights in sorted(p for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".pt"}):
        size = weights.stat().st_size
        digest.update(f"{weights.name}:{size}".encode())
        with weights.open("rb") as fh:
            digest.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), 2)
                digest.update(fh.read(1 << 20))
    return f"{path.name[:80]}@{digest.hexdigest()[:16]}"


def torch_device(preferred: str | None = None) -> str:
    import torch

    if preferred:
        return preferred
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class Encoder:
    path: Path
    id: str
    tokenizer: Any
    model: Any
    device: str
    max_length: int = 256

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Mean of the last hidden states over real (non-padding) tokens, one row per text."""
        import torch

        out: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    list(texts[start : start + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out.append(pooled.float().cpu().numpy())
        if not out:
            return np.zeros((0, int(self.model.config.hidden_size)), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)


def encoder_load(path: str | Path | None = None, *, device: str | None = None) -> Encoder:
    """Load a local encoder by path (settings.PARITY_ENCODER_PATH by default); never downloads."""
    folder = model_path_check(
        path or settings.PARITY_ENCODER_PATH, field="encoder_path", what="encoder"
    )
    from transformers import AutoModel, AutoTokenizer

    device = torch_device(device)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = AutoModel.from_pretrained(folder, local_files_only=True).to(device).eval()
    return Encoder(
        path=folder, id=model_id(folder), tokenizer=tokenizer, model=model, device=device
    )


def embeddings_for_items(
    *,
    encoder: Encoder,
    item_ids: Sequence[int] | np.ndarray,
    texts: Sequence[str],
    batch_size: int = 32,
) -> np.ndarray:
    """Embeddings of the items, read from the cache or computed and cached (missing ones only)."""
    from active_learning.models import ItemEmbedding

    ids = [int(i) for i in item_ids]
    cached: dict[int, np.ndarray] = {}
    for start in range(0, len(ids), 5000):
        rows = ItemEmbedding.objects.filter(
            encoder=encoder.id, item_id__in=ids[start : start + 5000]
        ).values_list("item_id", "vector")
        for item_id, vector in rows:
            cached[item_id] = np.frombuffer(bytes(vector), dtype="<f4")
    missing = [n for n, item_id in enumerate(ids) if item_id not in cached]
    if missing:
        vectors = encoder.encode([texts[n] for n in missing], batch_size=batch_size)
        ItemEmbedding.objects.bulk_create(
            [
                ItemEmbedding(
                    item_id=ids[n],
                    encoder=encoder.id,
                    dims=vectors.shape[1],
                    vector=vectors[k].astype("<f4").tobytes(),
                )
                for k, n in enumerate(missing)
            ],
            batch_size=1000,
            # Two rounds embedding the same item at once: the first row wins, both are equal.
            ignore_conflicts=True,
        )
        for k, n in enumerate(missing):
            cached[ids[n]] = vectors[k]
    if not ids:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([cached[i] for i in ids]).astype(np.float32)


def features_describe(*, kind: str, encoder: Encoder | None = None) -> str:
    """The feature key model versions are stored under."""
    if kind == "hashing":
        lo, hi = HASHING_NGRAMS
        return f"hashing:char_wb{lo}-{hi}:{HASHING_FEATURES}"
    if encoder is None:
        raise ValueError("encoder features need the loaded encoder")
    return f"encoder:{encoder.id}"
