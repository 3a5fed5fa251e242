from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.exports import (
    MARGINS,
    METHODS,
    PAIRINGS,
    PREFERENCE_FORMATS,
    SHAPES,
    SPLITS,
    STYLES,
    jsonl_stream,
    parquet_stream,
    preference_export,
    preference_retractions,
)
from annotation.models import Project


class Command(BaseCommand):
    help = (
        "Export preference data as JSON Lines or Parquet, streamed: pairs (chosen/rejected) or, for rating "
        "projects, unpaired lines (completion/label). Prints the cursor for the next incremental pull "
        "(--since) on stderr; --retractions lists the items changed since the cursor that no longer qualify. "
        "Writes nothing when there is no line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--format", choices=PREFERENCE_FORMATS, default="jsonl")
        parser.add_argument(
            "-o", "--output", type=Path, help="file to write (default: stdout, JSON Lines only)"
        )
        parser.add_argument("--style", choices=STYLES, default="standard")
        parser.add_argument("--method", choices=METHODS, default="majority")
        parser.add_argument("--language", help="only this language (BCP 47 tag)")
        parser.add_argument(
            "--min-agreement", type=float, help="skip pairs with less agreement (0–1)"
        )
        parser.add_argument(
            "--since",
            help="cursor printed by an earlier export: only items whose line changed since",
        )
        parser.add_argument(
            "--retractions",
            action="store_true",
            help='write the retractions of this pull ({"item_id"} lines) instead of its lines',
        )
        parser.add_argument("--include-ties", action="store_true")
        parser.add_argument(
            "--shape", choices=SHAPES, default="pairs", help="pairs, or unpaired (rating projects)"
        )
        parser.add_argument(
            "--pairs", choices=PAIRINGS, default="best_worst", help="rating projects: which pairs"
        )
        parser.add_argument(
            "--min-gap", type=float, help="rating pairs: the smallest score difference"
        )
        parser.add_argument(
            "--threshold",
            type=float,
            help="--shape unpaired: a score at or above it is a good completion (default: mid-scale)",
        )
        parser.add_argument(
            "--split", choices=SPLITS, help="one side of a split by a hash of the prompt"
        )
        parser.add_argument(
            "--test-fraction", type=float, help="with --split: the test share (default 0.1)"
        )
        parser.add_argument("--margin", choices=MARGINS, help="add a margin column in [0, 1]")
        parser.add_argument(
            "--signals", action="store_true", help="add the imported rewards and mean log-probs"
        )
        parser.add_argument(
            "--prompt-template",
            help="standard style: the prompt with {prompt} once (default: {prompt}\\n)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        project = Project.objects.filter(slug=opts["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {opts['project']!r}")
        if opts["format"] == "parquet" and opts["output"] is None:
            raise CommandError("Parquet is binary: give a file with -o")
        if opts["retractions"] and opts["format"] == "parquet":
            raise CommandError("retractions are JSON Lines; leave out --format parquet")
        pull = preference_retractions if opts["retractions"] else preference_export
        try:
            export = pull(
                project=project,
                method=opts["method"],
                language=opts["language"],
                min_agreement=opts["min_agreement"],
                since=opts["since"],
                exclude_ties=not opts["include_ties"],
                style=opts["style"],
                shape=opts["shape"],
                pairs=opts["pairs"],
                min_gap=opts["min_gap"],
                threshold=opts["threshold"],
                split=opts["split"],
                test_fraction=opts["test_fraction"],
                margin=opts["margin"],
                signals=opts["signals"],
                prompt_template=opts["prompt_template"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(_messages(exc))) from None
        first = next(export.rows, None)
        if first is None:
            export.rows.close()
            # An empty file would not load (datasets fails on it): nothing is written.
            self.stderr.write(f"no lines; nothing written; next cursor: {export.cursor}")
            return
        rows = itertools.chain([first], export.rows)
        chunks = (
            parquet_stream(rows, schema=export.schema)
            if opts["format"] == "parquet"
            else jsonl_stream(rows)
        )
        written = _write(chunks, opts["output"])
        self.stderr.write(f"{written} bytes written; next cursor: {export.cursor}")


def _messages(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [f"{name}: {msg}" for name, msgs in exc.message_dict.items() for msg in msgs]
    return exc.messages


def _write(chunks: Any, output: Path | None) -> int:
    written = 0
    if output is None:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
            written += len(chunk)
        sys.stdout.buffer.flush()
        return written
    try:
        with output.open("wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                written += len(chunk)
    except OSError as exc:
        raise CommandError(f"cannot write {output}: {exc.strerror}") from None
    return written
