"""Labelled data sets the simulation replays: the bundled MLQE-PE dev split, a folder in
the MLQE-PE layout, or JSON Lines of a team's own history.

- MLQE-PE layout: any `<prefix>.<pair>.df.short.tsv` (tab-separated, a header with at
  least `original`, `translation` and `mean`), loose or inside `.tar.gz` / `.tgz` /
  `.tar` archives anywhere under the folder, with the token log-probs, when present, in
  `word-probas/word_probas.<prefix>.<pair>` beside it (one line of numbers per row; the
  matching `mt.<prefix>.<pair>` is not needed). The language is the pair (`en-de`).
- JSON Lines (`.jsonl`, `.jsonl.gz`): one item a line, `{"language": "sw", "prompt": "…",
  "response": "…", "token_logprobs": [-0.1, …] (optional), "score": 72}`.

Every bad line or file is refused with its name, line and reason; nothing is replayed.
No Django: the command and bench/ call it.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TSV_NAME = re.compile(r"^(?P<prefix>.+)\.(?P<pair>[A-Za-z]{2,3}-?[A-Za-z]{2,3})\.df\.short\.tsv$")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


class DataError(ValueError):
    """A data set the simulation cannot replay; the message names the file and the fix."""


@dataclass
class Records:
    """One language's items: source, output, token log-probs (or None), human score."""

    language: str
    prompts: list[str] = field(default_factory=list)
    responses: list[str] = field(default_factory=list)
    logprobs: list[np.ndarray | None] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


def _pair_name(pair: str) -> str:
    if "-" in pair:
        return pair.lower()
    return f"{pair[:2]}-{pair[2:]}".lower() if len(pair) == 4 else pair.lower()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


# ---------------------------------------------------------------------------------------
# MLQE-PE layout
# ---------------------------------------------------------------------------------------


def _tsv_records(name: str, text: str, probas: str | None) -> Records:
    match = TSV_NAME.match(Path(name).name)
    assert match is not None
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        raise DataError(f"{name}: empty file")
    header = lines[0].split("\t")
    missing = [c for c in ("original", "translation", "mean") if c not in header]
    if missing:
        raise DataError(
            f"{name}: the header has no {', '.join(missing)} column (found: {', '.join(header)})"
        )
    proba_lines = None if probas is None else [line for line in probas.split("\n") if line.strip()]
    if proba_lines is not None and len(proba_lines) != len(lines) - 1:
        raise DataError(
            f"{name}: {len(lines) - 1} rows but {len(proba_lines)} lines of token log-probs in word-probas/"
        )
    out = Records(language=_pair_name(match["pair"]))
    for n, line in enumerate(lines[1:], start=2):
        prompt, response, mean = _tsv_row(name, n, line, header)
        logprobs = None
        if proba_lines is not None:
            try:
                logprobs = np.array([float(v) for v in proba_lines[n - 2].split()], dtype=float)
            except ValueError:
                raise DataError(
                    f"{name}: word-probas line {n - 1} holds something that is not a number"
                ) from None
        out.prompts.append(prompt)
        out.responses.append(response)
        out.logprobs.append(logprobs)
        out.scores.append(mean)
    return out


def _tsv_row(name: str, n: int, line: str, header: list[str]) -> tuple[str, str, float]:
    """Line `n`'s source, translation and mean score."""
    col = {c: header.index(c) for c in ("original", "translation", "mean")}
    cells = line.split("\t")
    if len(cells) < len(header):
        raise DataError(f"{name} line {n}: {len(cells)} cells, the header has {len(header)}")
    try:
        mean = float(cells[col["mean"]])
    except ValueError:
        raise DataError(f"{name} line {n}: mean {cells[col['mean']]!r} is not a number") from None
    if not math.isfinite(mean):
        raise DataError(f"{name} line {n}: mean is not a finite number")
    return cells[col["original"]], cells[col["translation"]], mean


def _members(folder: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(where, {relative path: text}) for the loose files and for each archive under `folder`."""
    loose = {str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()}
    texts = {
        rel: p.read_text(encoding="utf-8")
        for rel, p in loose.items()
        if TSV_NAME.match(p.name) or p.parent.name == "word-probas"
    }
    if texts:
        yield str(folder), texts
    for _rel, p in sorted(loose.items()):
        if not p.name.endswith(ARCHIVE_SUFFIXES):
            continue
        try:
            with tarfile.open(p, "r:*") as tar:
                inner = {
                    m.name: tar.extractfile(m).read().decode("utf-8")  # type: ignore[union-attr]
                    for m in tar.getmembers()
                    if m.isfile()
                    and (
                        TSV_NAME.match(Path(m.name).name)
                        or Path(m.name).parent.name == "word-probas"
                    )
                }
        except (tarfile.TarError, OSError, UnicodeDecodeError) as exc:
            raise DataError(f"{p}: not a readable tar archive of UTF-8 text ({exc})") from None
        yield str(p), inner


def mlqe_layout_load(folder: Path) -> list[Records]:
    found: dict[str, Records] = {}
    for where, files in _members(folder):
        for rel, text in sorted(files.items()):
            match = TSV_NAME.match(Path(rel).name)
            if not match:
                continue
            probas_rel = str(
                Path(rel).parent / "word-probas" / f"word_probas.{match['prefix']}.{match['pair']}"
            )
            records = _tsv_records(
                f"{where}:{rel}" if where != str(folder) else str(folder / rel),
                text,
                files.get(probas_rel),
            )
            if records.language in found:  # several splits of one pair: one pool
                prior = found[records.language]
                prior.prompts += records.prompts
                prior.responses += records.responses
                prior.logprobs += records.logprobs
                prior.scores += records.scores
            else:
                found[records.language] = records
    if not found:
        raise DataError(
            f"{folder}: no <prefix>.<pair>.df.short.tsv found, loose or in .tar.gz archives (the MLQE-PE layout)"
        )
    return [found[k] for k in sorted(found)]


# ---------------------------------------------------------------------------------------
# JSON Lines
# ---------------------------------------------------------------------------------------


def jsonl_load(path: Path) -> list[Records]:
    opener = gzip.open if path.name.endswith(".gz") else open
    found: dict[str, Records] = {}
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            lines = list(fh)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read it as UTF-8 JSON Lines ({exc})") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        language, prompt, response, logprobs, score = _jsonl_row(path, n, line)
        records = found.setdefault(language, Records(language=language))
        records.prompts.append(prompt)
        records.responses.append(response)
        records.logprobs.append(logprobs)
        records.scores.append(score)
    if not found:
        raise DataError(f"{path}: no items")
    return [found[k] for k in sorted(found)]


def _jsonl_row(path: Path, n: int, line: str) -> tuple[str, str, str, np.ndarray | None, float]:
    """Line `n`'s language, prompt, response, token log-probs and score."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} line {n}: not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise DataError(f"{path} line {n}: a line must be a JSON object")
    language = row.get("language")
    if not isinstance(language, str) or not language.strip():
        raise DataError(f"{path} line {n}: language must be a non-empty string")
    response = row.get("response")
    if not isinstance(response, str):
        raise DataError(f"{path} line {n}: response must be a string")
    prompt = row.get("prompt", "")
    if not isinstance(prompt, str):
        raise DataError(f"{path} line {n}: prompt must be a string")
    score = _number(row.get("score"))
    if score is None:
        raise DataError(
            f"{path} line {n}: score must be a finite number (the human score of the response)"
        )
    raw_lp = row.get("token_logprobs")
    logprobs = None
    if raw_lp is not None:
        if not isinstance(raw_lp, list) or not all(_number(v) is not None for v in raw_lp):
            raise DataError(f"{path} line {n}: token_logprobs must be a list of finite numbers")
        if any(v > 0 for v in raw_lp):
            raise DataError(f"{path} line {n}: token_logprobs must be log-probabilities (≤ 0)")
        logprobs = np.asarray(raw_lp, dtype=float) if raw_lp else None
    return language.strip(), prompt, response, logprobs, score


def data_load(path: Path | str) -> list[Records]:
    """The languages of a folder in the MLQE-PE layout or of a JSON Lines file."""
    path = Path(path)
    if path.is_dir():
        return mlqe_layout_load(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    if path.name.endswith((".jsonl", ".jsonl.gz", ".json")):
        return jsonl_load(path)
    if path.name.endswith(ARCHIVE_SUFFIXES):
        return mlqe_layout_load_archive(path)
    raise DataError(
        f"{path}: give a folder in the MLQE-PE layout, a .tar.gz of one, or a .jsonl file"
    )


def mlqe_layout_load_archive(path: Path) -> list[Records]:
    """One archive on its own (as a folder holding only it would be read)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / path.name
        link.symlink_to(path.resolve())
        return mlqe_layout_load(Path(tmp))


def bundled_mlqe(pairs: Sequence[str] | None = None, limit: int | None = None) -> list[Records]:
    """The bundled MLQE-PE dev split (data/mlqe-pe/, see data/README.md)."""
    from annotation.demo_data import MLQE_PAIRS, mlqe_segments

    out = []
    for pair in pairs or MLQE_PAIRS:
        records = Records(language=pair)
        for seg in mlqe_segments(pair):
            if limit is not None and len(records.scores) >= limit:
                break
            records.prompts.append(seg["original"])
            records.responses.append(seg["translation"])
            records.logprobs.append(np.asarray(seg["token_logprobs"], dtype=float))
            records.scores.append(float(seg["mean"]))
        out.append(records)
    return out


def records_dump_jsonl(languages: Sequence[Records]) -> str:
    """The JSON Lines form of records (what `jsonl_load` reads back); tests and bench use it."""
    buffer = io.StringIO()
    for rec in languages:
        for prompt, response, lp, score in zip(
            rec.prompts, rec.responses, rec.logprobs, rec.scores, strict=True
        ):
            row: dict[str, Any] = {
                "language": rec.language,
                "prompt": prompt,
                "response": response,
                "score": score,
            }
            if lp is not None:
                row["token_logprobs"] = [float(v) for v in lp]
            buffer.write(json.dumps(row, ensure_ascii=False) + "\n")
    return buffer.getvalue()
