"""Rebuild the bundled demo data under data/ from the original downloads.

    python data/build.py --source DOWNLOADS [--out data]

Reads the original archives (MLQE-PE dev tarballs, WMT23 side-by-side MQM tarballs, the
UDHR Article 1 JSON), writes compact gzip JSON Lines plus a small JSON file, and prints
checks: row counts, token/log-probability alignment, and how often the MQM penalty rule
reproduces the averages the WMT23 data set itself recorded. Standard library only, so it
runs without the project installed. Output is byte-identical across runs (sorted keys,
gzip mtime 0), so a rebuild shows up in `git diff` only when the data really changed.
See data/README.md for where each download comes from, licences and what was changed.
"""

from __future__ import annotations

import argparse
import gzip
import html
import io
import json
import re
import statistics
import sys
import tarfile
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MLQE_PAIRS = ("en-de", "en-zh", "et-en", "ne-en", "ro-en", "ru-en", "si-en")
WMT_LPS = {"en-de": "ende", "zh-en": "zhen"}
EOS = "</s>"

# Google's MQM weights (Freitag et al., "Experts, Errors, and Context", TACL 2021), as the
# WMT23 release scores them: "Source issue" marks a problem of the source, not of the
# translation, and "Accuracy/Creative Reinterpretation" marks a licence the translator
# took on purpose; neither costs the translation anything. With these two at 0 the rule
# reproduces the averages the data set recorded itself (build.py prints the match rate).
MQM_MAJOR = 5.0
MQM_MINOR = 1.0
MQM_MINOR_PUNCTUATION = 0.1
MQM_NON_TRANSLATION = 25.0

# UDHR Article 1: which translations to keep (the file's `code`) and the BCP 47 tag the
# demo uses for each. Where the source tag carries an orthography variant (de-1996,
# el-monoton), the demo uses the plain language tag of that, the current standard; where
# langcodes would guess the wrong script (Assyrian Neo-Aramaic as Latin), the tag names it.
UDHR_CODES: dict[str, str] = {
    "arb": "ar",
    "heb": "he",
    "urd": "ur",
    "urd_2": "ur",
    "pes_1": "fa",
    "pbu": "ps",
    "ydd": "yi",
    "div": "dv",
    "aii": "aii-Syrc",
    "fuf_adlm": "fuf-Adlm",
    "hin": "hi",
    "nep": "ne",
    "mar": "mr",
    "ben": "bn",
    "pan": "pa",
    "guj": "gu",
    "tam": "ta",
    "tel": "te",
    "kan": "kn",
    "mal": "ml",
    "sin": "si",
    "amh": "am",
    "tir": "ti",
    "cmn_hans": "zh",
    "cmn_hans_beijing": "zh",
    "cmn_hant": "zh-Hant",
    "yue": "yue",
    "jpn": "ja",
    "jpn_tokyo": "ja",
    "kor": "ko",
    "tha": "th",
    "tha2": "th",
    "lao": "lo",
    "khm": "km",
    "mya": "my",
    "bod": "bo",
    "kat": "ka",
    "hye": "hy",
    "ell_monotonic": "el",
    "rus": "ru",
    "ukr": "uk",
    "chr_cased": "chr",
    "ike": "iu",
    "vai": "vai",
    "iii": "ii",
    "tzm_tfng": "tzm-Tfng",
    "swh": "sw",
    "yor": "yo",
    "hau_3": "ha",
    "zul": "zu",
    "ibo": "ig",
    "eng": "en",
    "deu_1996": "de",
    "fra": "fr",
    "spa": "es",
    "tur": "tr",
    "vie": "vi",
    "ind": "id",
    "pol": "pl",
}


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------


def jsonl_gz_write(path: Path, records: Iterable[dict[str, Any]]) -> int:
    buffer = io.BytesIO()
    count = 0
    # mtime=0 and no file name in the header: the same records give the same bytes.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
        for record in records:
            gz.write(
                json.dumps(
                    record, ensure_ascii=False, sort_keys=True, separators=(",", ":")
                ).encode("utf-8")
            )
            gz.write(b"\n")
            count += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return count


def _tar_texts(archive: Path) -> dict[str, str]:
    with tarfile.open(archive, "r:gz") as tar:
        return {
            member.name: tar.extractfile(member).read().decode("utf-8")  # type: ignore[union-attr]
            for member in tar.getmembers()
            if member.isfile()
        }


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


# ---------------------------------------------------------------------------------------
# MLQE-PE
# ---------------------------------------------------------------------------------------


def _spelling(text: str) -> str:
    """Letters only, to check that a token line spells its translation."""
    return re.sub(r"\s|@@|▁|@", "", html.unescape(text))


def mlqe_build(source: Path, out: Path) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for pair in MLQE_PAIRS:
        short = pair.replace("-", "")
        files = _tar_texts(source / "mlqe-pe" / f"{pair}-dev.tar.gz")
        prefix = f"{pair}-dev/"
        rows = _lines(files[f"{prefix}dev.{short}.df.short.tsv"])
        header, rows = rows[0].split("\t"), rows[1:]
        expected = [
            "index",
            "original",
            "translation",
            "scores",
            "mean",
            "z_scores",
            "z_mean",
            "model_scores",
        ]
        # ru-en names its first column "segid"; it is the same segment number.
        if ["index" if h == "segid" else h for h in header] != expected:
            sys.exit(f"{pair}: unexpected TSV header {header}")
        tokens = _lines(files[f"{prefix}word-probas/mt.dev.{short}"])
        logprobs = _lines(files[f"{prefix}word-probas/word_probas.dev.{short}"])
        doc_ids = _lines(files[f"{prefix}dev.doc_ids"])[1:]
        if not len(rows) == len(tokens) == len(logprobs) == len(doc_ids):
            sys.exit(
                f"{pair}: {len(rows)} rows, {len(tokens)} token lines, {len(logprobs)} log-prob lines, "
                f"{len(doc_ids)} doc ids"
            )
        records = []
        spelled_differently = 0
        for row, token_line, logprob_line, doc_id in zip(
            rows, tokens, logprobs, doc_ids, strict=True
        ):
            cells = row.split("\t")
            if len(cells) != len(expected):
                sys.exit(f"{pair}: a row has {len(cells)} cells, not {len(expected)}")
            index, original, translation, scores, mean, _z_scores, z_mean, model_score = cells
            # Moses escaped quotes and brackets in the token file; the TSV has the real characters.
            token_list = [html.unescape(t) for t in token_line.split()]
            values = [float(v) for v in logprob_line.split()]
            # The model scored one more position than there are tokens: the end of sentence.
            if len(values) != len(token_list) + 1:
                sys.exit(
                    f"{pair} #{index}: {len(token_list)} tokens but {len(values)} log-probabilities"
                )
            if any(v > 0 for v in values):
                sys.exit(f"{pair} #{index}: a log-probability above 0")
            if _spelling(token_line) != _spelling(translation):
                spelled_differently += 1
            records.append(
                {
                    "index": int(index),
                    "doc_id": doc_id,
                    "original": original,
                    "translation": translation,
                    "scores": [int(s) for s in json.loads(scores)],
                    "mean": round(float(mean), 4),
                    "z_mean": round(float(z_mean), 4),
                    "model_score": round(float(model_score), 4),
                    "tokens": [*token_list, EOS],
                    "token_logprobs": values,
                }
            )
        count = jsonl_gz_write(out / "mlqe-pe" / f"{pair}.jsonl.gz", records)
        report[pair] = {
            "segments": count,
            "raters": sorted({len(r["scores"]) for r in records}),
            "mean_score": round(statistics.mean(r["mean"] for r in records), 1),
            "tokens_spell_other_text": spelled_differently,
        }
    return report


# ---------------------------------------------------------------------------------------
# WMT23 MQM
# ---------------------------------------------------------------------------------------


def mqm_penalty(*, category: str, severity: str) -> float:
    """One error row's MQM penalty (see MQM_* above)."""
    if severity == "No-error" or category == "No-error":
        return 0.0
    if category.startswith("Non-translation"):
        return MQM_NON_TRANSLATION
    if category in ("Source issue", "Accuracy/Creative Reinterpretation"):
        return 0.0
    if severity == "Major":
        return MQM_MAJOR
    if severity == "Minor":
        return MQM_MINOR_PUNCTUATION if category == "Fluency/Punctuation" else MQM_MINOR
    raise ValueError(f"unknown MQM severity {severity!r} (category {category!r})")


_MARKUP = re.compile(r"</?v>")


def _unmark(text: str) -> str:
    """The text without the rater's <v>…</v> error-span markup."""
    return _MARKUP.sub("", text).strip()


def wmt_build(source: Path, out: Path) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for lp, short in WMT_LPS.items():
        name = f"sxs_mqm_generalMT2023_{short}.3ratingsPerSegment.tsv"
        text = _tar_texts(source / "wmt23-mqm" / f"{name}.tar.gz")[name]
        lines = _lines(text)
        header = lines[0].split("\t")[:10]
        if header != [
            "system",
            "doc",
            "docSegId",
            "globalSegId",
            "rater",
            "source",
            "target",
            "category",
            "severity",
            "metadata",
        ]:
            sys.exit(f"{lp}: unexpected TSV header {header}")
        segments: dict[int, dict[str, Any]] = {}
        # Averages the data set recorded itself (a running figure saved with each row),
        # to check the penalty rule against: (segment, system) -> values seen.
        recorded: dict[tuple[int, str], set[float]] = defaultdict(set)
        for line in lines[1:]:
            (
                system,
                doc,
                doc_seg_id,
                global_seg_id,
                rater,
                src,
                target,
                category,
                severity,
                metadata,
            ) = line.split("\t")[:10]
            seg_key = int(global_seg_id)
            seg = segments.setdefault(
                seg_key,
                {
                    "global_seg_id": seg_key,
                    "doc": doc,
                    "doc_seg_id": int(doc_seg_id),
                    "source": _unmark(src),
                    "targets": {},
                    "penalties": {},
                    "errors": {},
                    "rated_at": {},
                    "attention_checks": [],
                },
            )
            target_text = _unmark(target)
            if system in seg["targets"] and seg["targets"][system] != target_text:
                sys.exit(f"{lp} segment {seg_key} {system}: two different targets")
            seg["targets"][system] = target_text
            try:
                meta = json.loads(metadata)
            except json.JSONDecodeError:
                meta = {}
            if severity == "HOTW-test":
                # The data set's attention check: an error planted in the text; "Found" or "Missed".
                seg["attention_checks"].append(
                    {"system": system, "rater": rater, "found": category == "Found"}
                )
                continue
            penalties = seg["penalties"].setdefault(system, {})
            penalties[rater] = round(
                penalties.get(rater, 0.0) + mqm_penalty(category=category, severity=severity), 4
            )
            if category != "No-error":
                seg["errors"].setdefault(system, {}).setdefault(rater, []).append(
                    [category, severity]
                )
            timestamp = meta.get("timestamp")
            if isinstance(timestamp, int):
                rated = seg["rated_at"].setdefault(system, {})
                rated[rater] = max(rated.get(rater, 0), timestamp)
            metric = (meta.get("segment") or {}).get("metrics", {}).get("MQM")
            if isinstance(metric, int | float):
                recorded[(seg_key, system)].add(round(float(metric), 3))
        records = [segments[k] for k in sorted(segments)]
        for seg in records:
            seg["attention_checks"].sort(key=lambda c: (c["system"], c["rater"]))
            raters = {r for per_system in seg["penalties"].values() for r in per_system}
            for system in seg["targets"]:
                if set(seg["penalties"].get(system, {})) != raters:
                    sys.exit(
                        f"{lp} segment {seg['global_seg_id']} {system}: not scored by all of {sorted(raters)}"
                    )
        # The recorded figure is saved as the rater works, so a row saved before the
        # rater's last error shows a lower average; match means the rule is right.
        matched = compared = 0
        for (seg_key, system), values in recorded.items():
            if (
                "_with_" in system
            ):  # en-de: scored again beside another system; the figure is the other run's
                continue
            compared += 1
            penalties = segments[seg_key]["penalties"][system].values()
            matched += round(statistics.mean(penalties), 3) in values
        systems = sorted({s for seg in records for s in seg["targets"]})
        per_system = {
            s: round(
                statistics.mean(statistics.mean(seg["penalties"][s].values()) for seg in records), 2
            )
            for s in systems
        }
        count = jsonl_gz_write(out / "wmt23-mqm" / f"{lp}.jsonl.gz", records)
        report[lp] = {
            "segments": count,
            "systems": len(systems),
            "raters": len({r for seg in records for p in seg["penalties"].values() for r in p}),
            "attention_checks": len([c for seg in records for c in seg["attention_checks"]]),
            "recorded_averages_reproduced": f"{matched}/{compared}",
            "mean_penalty_by_system": dict(sorted(per_system.items(), key=lambda kv: kv[1])),
        }
    return report


# ---------------------------------------------------------------------------------------
# UDHR
# ---------------------------------------------------------------------------------------


def udhr_build(source: Path, out: Path) -> dict[str, Any]:
    data = json.loads((source / "udhr" / "article1.json").read_text(encoding="utf-8"))
    by_code = {entry["code"]: entry for entry in data["items"]}
    missing = sorted(set(UDHR_CODES) - set(by_code))
    if missing:
        sys.exit(f"udhr: codes not in the source: {missing}")
    items = []
    for code, tag in UDHR_CODES.items():
        entry = by_code[code]
        items.append(
            {
                "code": code,
                "bcp47": tag,
                "source_bcp47": entry["bcp47"],
                "name": entry["name"],
                "dir": entry["dir"],
                "script": entry["script"],
                "article1": entry["article1"],
            }
        )
    doc = {
        "source": data.get("source"),
        "commit": data.get("commit"),
        "licence": "text: UDHR in Unicode (OHCHR translations); package: MIT (wooorm/udhr)",
        "items": items,
    }
    path = out / "udhr" / "article1.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return {
        "translations": len(items),
        "languages": len({i["bcp47"] for i in items}),
        "scripts": len({i["script"] for i in items}),
        "rtl": len({i["bcp47"] for i in items if i["dir"] == "rtl"}),
    }


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        type=Path,
        required=True,
        help="folder with the downloads: mlqe-pe/, wmt23-mqm/ and udhr/ (see data/README.md)",
    )
    parser.add_argument(
        "--out", type=Path, default=here, help="where to write (default: this folder)"
    )
    args = parser.parse_args(argv)
    for sub in ("mlqe-pe", "wmt23-mqm", "udhr"):
        if not (args.source / sub).is_dir():
            parser.error(
                f"{args.source / sub} does not exist; --source must hold mlqe-pe/, wmt23-mqm/ and udhr/"
            )
    report = {
        "mlqe-pe": mlqe_build(args.source, args.out),
        "wmt23-mqm": wmt_build(args.source, args.out),
        "udhr": udhr_build(args.source, args.out),
    }
    print(json.dumps(report, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
