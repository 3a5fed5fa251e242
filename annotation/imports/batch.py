"""A batch of import lines: reading JSON Lines, the errors a batch reports (line, field,
reason), its result, and the all-or-nothing run that hands valid lines on in chunks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from annotation.validation import TextInvalid

CHUNK = 2000


MAX_ERRORS = 1000


@dataclass(frozen=True)
class LineError:
    line: int
    message: str
    field: str | None = None
    code: str = "invalid"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.field}" if self.field else "")
        return f"{where}: {self.message}"


class ImportRejected(Exception):
    """The batch was refused; nothing was stored."""

    def __init__(self, errors: list[LineError], *, truncated: bool = False) -> None:
        self.errors = errors
        self.truncated = truncated
        super().__init__("; ".join(str(e) for e in errors[:5]))

    @property
    def is_conflict(self) -> bool:
        return bool(self.errors) and all(e.code == "conflict" for e in self.errors)

    def summary(self, *, shown: int = 20) -> str:
        """The message a command prints: how many lines were bad and the first few of them."""
        lines = [str(e) for e in self.errors[:shown]]
        more = len(self.errors) - len(lines)
        tail = f" (and {more} more)" if more > 0 else ""
        return f"nothing imported; {len(self.errors)} bad line(s){tail}:\n  " + "\n  ".join(lines)


@dataclass
class ImportResult:
    created: int = 0
    unchanged: int = 0
    updated: int = 0
    item_ids: list[int] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, int]:
        return {"created": self.created, "unchanged": self.unchanged, "updated": self.updated}


class LineInvalid(Exception):
    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        self.message = message


def jsonl_records(lines: Iterable[bytes | str]) -> Iterator[tuple[int, Any]]:
    """Yield (line number, parsed object or LineError) for each non-blank JSON line."""
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield (
                    number,
                    LineError(number, f"not valid UTF-8 ({exc.reason} at byte {exc.start})"),
                )
                continue
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw)
        except json.JSONDecodeError as exc:
            yield number, LineError(number, f"not valid JSON: {exc.msg} at column {exc.colno}")
        except RecursionError:
            yield number, LineError(number, "not valid JSON: nested too deeply")


class LineErrors:
    """The bad lines of one batch: the first MAX_ERRORS kept, the rest only counted."""

    def __init__(self) -> None:
        self.lines: list[LineError] = []
        self.truncated = False

    def add(self, error: LineError) -> None:
        if len(self.lines) < MAX_ERRORS:
            self.lines.append(error)
        else:
            self.truncated = True


def batch_run(
    records: Iterable[tuple[int, Any]],
    *,
    max_lines: int,
    errors: LineErrors,
    clean: Callable[[int, Any], dict[str, Any]],
    write: Callable[[list[tuple[int, dict[str, Any]]]], None],
) -> None:
    """Validate each line with `clean` and hand the good ones to `write` in chunks of
    CHUNK; every bad line (and an empty or oversized batch) goes to `errors`. Runs inside
    the caller's transaction, which raises ImportRejected afterwards when errors has any."""
    count = 0
    chunk: list[tuple[int, dict[str, Any]]] = []
    for number, record in records:
        count += 1
        if count > max_lines:
            errors.add(
                LineError(number, f"a batch holds at most {max_lines} lines; split the file")
            )
            break
        if isinstance(record, LineError):
            errors.add(record)
            continue
        try:
            chunk.append((number, clean(number, record)))
        except LineInvalid as exc:
            errors.add(LineError(number, exc.message, exc.field))
            continue
        except TextInvalid as exc:
            errors.add(LineError(number, exc.reason, exc.field))
            continue
        if len(chunk) >= CHUNK:
            write(chunk)
            chunk = []
    if chunk:
        write(chunk)
    if count == 0:
        errors.add(LineError(0, "the batch is empty"))
