"""The bundled real data (data/, see data/README.md) as import lines and historical judgments.

Readers for the demo, the active-learning simulation and the tests. Every function
streams from the gzip JSON Lines files under settings.PARITY_DATA_DIR and yields plain
dicts in the shapes of DESIGN.md: item import lines for `items_import` and historical
judgment lines for `judgments_import`. Nothing here touches the database.

- MLQE-PE (CC0 1.0): seven language pairs, 1,000 machine translations each with six (ru-en:
  three) direct-assessment scores 0–100 and the NMT model's token log-probabilities. The
  translation is the output under review, so an item's language is the pair's target.
- WMT23 MQM (Apache-2.0): ten systems' translations of the same sources, three raters'
  MQM penalties each; two systems side by side make a pairwise item, and the raters'
  penalties decide their historical choice.
- UDHR Article 1 (UDHR in Unicode / OHCHR translations): one text per language, in 30+
  scripts, as items of a labels project.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings

MLQE_PAIRS = ("en-de", "en-zh", "et-en", "ne-en", "ro-en", "ru-en", "si-en")
WMT_LPS = ("en-de", "zh-en")

MLQE_LICENCE = "CC0-1.0"
WMT_LICENCE = "Apache-2.0"
UDHR_LICENCE = "UDHR in Unicode (OHCHR translations); wooorm/udhr MIT"

# A penalty gap of one Major error or more makes a historical preference "much better".
WMT_STRONG_GAP = 5.0


def data_dir() -> Path:
    return Path(settings.PARITY_DATA_DIR)


def _jsonl_gz(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; rebuild it with `python data/build.py` (see data/README.md)"
        )
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a whole number ≥ 0 or None, not {limit!r}")


def _take(records: Iterable[dict[str, Any]], limit: int | None) -> Iterator[dict[str, Any]]:
    _check_limit(limit)
    for count, record in enumerate(records):
        if limit is not None and count >= limit:
            return
        yield record


# ---------------------------------------------------------------------------------------
# MLQE-PE: rating items
# ---------------------------------------------------------------------------------------


def _mlqe_pair_check(pair: str) -> tuple[str, str]:
    if pair not in MLQE_PAIRS:
        raise ValueError(f"unknown MLQE-PE pair {pair!r}; use one of {', '.join(MLQE_PAIRS)}")
    source, target = pair.split("-")
    return source, target


def mlqe_target_language(pair: str) -> str:
    """The language of the output under review: the pair's target."""
    return _mlqe_pair_check(pair)[1]


def mlqe_segments(pair: str) -> Iterator[dict[str, Any]]:
    """All 1,000 segments of a pair, in the data set's order.

    Each: index, doc_id, original (source sentence), translation, scores (the raters'
    0–100 scores), mean, z_mean, model_score (mean token log-probability), tokens (BPE
    tokens of the output, ending with "</s>") and token_logprobs (one per token).
    """
    _mlqe_pair_check(pair)
    return _jsonl_gz(data_dir() / "mlqe-pe" / f"{pair}.jsonl.gz")


def mlqe_external_id(pair: str, index: int) -> str:
    return f"mlqe-{pair}-{index}"


def mlqe_items(pair: str, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Rating-project import lines for the first `limit` segments of a pair."""
    source, target = _mlqe_pair_check(pair)
    for seg in _take(mlqe_segments(pair), limit):
        yield {
            "external_id": mlqe_external_id(pair, seg["index"]),
            "language": target,
            "prompt": seg["original"],
            "response": seg["translation"],
            "model": f"mlqe-pe-nmt-{pair}",
            "token_logprobs": seg["token_logprobs"],
            "metadata": {
                "pair": pair,
                "source_language": source,
                "dataset": "MLQE-PE",
                "licence": MLQE_LICENCE,
                "mean_score": seg["mean"],
                "z_mean": seg["z_mean"],
                "model_score": seg["model_score"],
                "doc_id": seg["doc_id"],
            },
        }


def mlqe_judgments(pair: str, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Historical judgments for the items of `mlqe_items(pair, limit)`: one per rater score.

    The data set lists each segment's scores in rater order without rater ids; position k
    is taken as rater r{k} of that pair (1-based).
    """
    _mlqe_pair_check(pair)
    for seg in _take(mlqe_segments(pair), limit):
        for k, score in enumerate(seg["scores"], start=1):
            yield {
                "item_external_id": mlqe_external_id(pair, seg["index"]),
                "rater": f"mlqe-{pair}-r{k}",
                "value": {"score": int(score)},
            }


# ---------------------------------------------------------------------------------------
# WMT23 MQM: pairwise items
# ---------------------------------------------------------------------------------------


def _wmt_lp_check(lp: str) -> tuple[str, str]:
    if lp not in WMT_LPS:
        raise ValueError(f"unknown WMT23 language pair {lp!r}; use one of {', '.join(WMT_LPS)}")
    source, target = lp.split("-")
    return source, target


def wmt_segments(lp: str) -> Iterator[dict[str, Any]]:
    """The segments of a WMT23 pair: source, targets {system: text}, penalties {system:
    {rater: MQM penalty}}, errors, rated_at (ms) and the data set's attention checks."""
    _wmt_lp_check(lp)
    return _jsonl_gz(data_dir() / "wmt23-mqm" / f"{lp}.jsonl.gz")


def wmt_system_pairs(systems: list[str], position: int) -> list[tuple[str, str]]:
    """The pairs of systems shown for the segment at `position`.

    A round-robin schedule (the circle method): every segment shows every system once, in
    n/2 disjoint pairs, and n-1 consecutive segments together show every pair of systems.
    Which side is A alternates, so no system is always on the left.
    """
    names = sorted(systems)
    if len(names) % 2:
        names.append("")  # a bye: the system drawn against it sits this segment out
    n = len(names)
    if n < 2:
        return []
    rounds = n - 1
    shift = position % rounds
    rest = names[1:]
    rotated = [names[0], *rest[shift:], *rest[:shift]]
    pairs = []
    for i in range(n // 2):
        left, right = rotated[i], rotated[n - 1 - i]
        if not left or not right:
            continue
        pairs.append((right, left) if (position + i) % 2 else (left, right))
    return pairs


def wmt_choice(*, penalty_a: float, penalty_b: float) -> dict[str, Any]:
    """A rater's historical preference from their MQM penalties: lower is better."""
    gap = round(abs(penalty_a - penalty_b), 4)
    if gap == 0:
        return {"choice": "tie"}
    return {
        "choice": "a" if penalty_a < penalty_b else "b",
        "strength": 2 if gap >= WMT_STRONG_GAP else 1,
    }


def wmt_external_id(lp: str, global_seg_id: int, system_a: str, system_b: str) -> str:
    return f"wmt23-{lp}-{global_seg_id}-{system_a}-vs-{system_b}"


def _wmt_pairs(lp: str, limit: int | None) -> Iterator[tuple[dict[str, Any], str, str]]:
    """(segment, system A, system B) in item order; pairs whose outputs are identical are left out."""
    _check_limit(limit)
    count = 0
    for position, seg in enumerate(wmt_segments(lp)):
        for system_a, system_b in wmt_system_pairs(list(seg["targets"]), position):
            if seg["targets"][system_a] == seg["targets"][system_b]:
                continue  # nothing to compare (en-de scored GPT4-5shot twice)
            if limit is not None and count >= limit:
                return
            count += 1
            yield seg, system_a, system_b


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return round(sum(values) / len(values), 4) if values else 0.0


def wmt_items(lp: str, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Pairwise import lines: the first `limit` (segment, system pair) items of a pair."""
    source, target = _wmt_lp_check(lp)
    for seg, system_a, system_b in _wmt_pairs(lp, limit):
        yield {
            "external_id": wmt_external_id(lp, seg["global_seg_id"], system_a, system_b),
            "language": target,
            "prompt": seg["source"],
            "prompt_id": f"wmt23-{lp}-{seg['global_seg_id']}",
            "response_a": seg["targets"][system_a],
            "response_b": seg["targets"][system_b],
            "model_a": system_a,
            "model_b": system_b,
            "metadata": {
                "lp": lp,
                "source_language": source,
                "dataset": "WMT23 MQM",
                "licence": WMT_LICENCE,
                "doc": seg["doc"],
                "doc_seg_id": seg["doc_seg_id"],
                "global_seg_id": seg["global_seg_id"],
                "mqm_a": _mean(seg["penalties"][system_a].values()),
                "mqm_b": _mean(seg["penalties"][system_b].values()),
            },
        }


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def wmt_judgments(lp: str, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Historical judgments for the items of `wmt_items(lp, limit)`: one per rater.

    Every rater of a segment scored every system, so each rater's two penalties give a
    choice: the lower penalty wins, equal penalties tie, a gap of 5 (one Major error) or
    more is strength 2. `created` is when the rater last touched either output.
    """
    _wmt_lp_check(lp)
    for seg, system_a, system_b in _wmt_pairs(lp, limit):
        external_id = wmt_external_id(lp, seg["global_seg_id"], system_a, system_b)
        penalties_a, penalties_b = seg["penalties"][system_a], seg["penalties"][system_b]
        for rater in sorted(penalties_a):
            line: dict[str, Any] = {
                "item_external_id": external_id,
                "rater": f"wmt23-{lp}-{rater}",
                "value": wmt_choice(penalty_a=penalties_a[rater], penalty_b=penalties_b[rater]),
            }
            stamps = [seg["rated_at"].get(system, {}).get(rater) for system in (system_a, system_b)]
            if all(stamps):
                line["created"] = _iso_ms(max(stamps))
            yield line


# ---------------------------------------------------------------------------------------
# UDHR Article 1: labels items
# ---------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _udhr_document(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing; rebuild it with `python data/build.py` (see data/README.md)"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def udhr_entries() -> list[dict[str, Any]]:
    """The bundled translations: code, bcp47, source_bcp47, name, dir, script, article1."""
    return list(_udhr_document(data_dir() / "udhr" / "article1.json")["items"])


def _tag_or_none(tag: str) -> str | None:
    from django.core.exceptions import ValidationError

    from annotation.languages import language_tag_normalize

    try:
        return language_tag_normalize(tag)
    except ValidationError:
        return None


def udhr_languages() -> list[str]:
    """The normalised tags of the bundled translations that langcodes accepts, sorted."""
    return sorted({tag for entry in udhr_entries() if (tag := _tag_or_none(entry["bcp47"]))})


def udhr_items(tags: Iterable[str] | None = None) -> Iterator[dict[str, Any]]:
    """Labels-project import lines, one per translation; `tags` keeps only those languages.

    Entries whose tag langcodes cannot validate are left out; a tag in `tags` that is not
    a valid BCP 47 tag is an error.
    """
    wanted: set[str] | None = None
    if tags is not None:
        if isinstance(tags, str):
            raise ValueError("tags must be a list of BCP 47 tags, not one string")
        wanted = set()
        for raw in tags:
            normal = _tag_or_none(raw)
            if normal is None:
                raise ValueError(f"{raw!r} is not a valid BCP 47 language tag")
            wanted.add(normal)
    for entry in udhr_entries():
        tag = _tag_or_none(entry["bcp47"])
        if tag is None or (wanted is not None and tag not in wanted):
            continue
        yield {
            "external_id": f"udhr-{entry['code']}",
            "language": tag,
            "response": entry["article1"],
            "model": "udhr-ohchr",
            "metadata": {
                "dataset": "UDHR Article 1",
                "licence": UDHR_LICENCE,
                "code": entry["code"],
                "name": entry["name"],
                "script": entry["script"],
            },
        }


def numbered(lines: Iterable[Any]) -> Iterator[tuple[int, Any]]:
    """(line number, line) pairs, the shape `items_import` and `judgments_import` take."""
    return enumerate(lines, start=1)
