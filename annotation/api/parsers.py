"""Request body parsers.

Ordinary endpoints take JSON read whole (bounded by DATA_UPLOAD_MAX_MEMORY_SIZE, so an
oversized body is a 413). Bulk imports take a JSON array or JSON Lines of up to
PARITY_MAX_IMPORT_BYTES and are parsed as a stream: the parser returns a lazy iterator of
(line number, record) pairs that the import service consumes chunk by chunk, so a 100 MB
body is never held as one string or one list. In a JSON array the "line" of an error is
the element's position (1-based).
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import IO, Any

from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser, JSONParser

from annotation.api.errors import PayloadTooLarge
from annotation.imports import LineError, jsonl_records

READ_SIZE = 1 << 20
_WHITESPACE = " \t\r\n"


# No value of Parity's needs a longer number; Python would parse 4,000 digits and fail later.
MAX_NUMBER_CHARS = 40


def bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise ValueError(f"a number has more than {MAX_NUMBER_CHARS} digits")
    return int(text)


def bounded_float(text: str) -> float:
    value = float(text)
    if len(text) > MAX_NUMBER_CHARS or value in (float("inf"), float("-inf")):
        raise ValueError(f"a number is out of range ({text[:20]}…)")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def json_loads_strict(text: str) -> Any:
    """json.loads that refuses what would fail later as a 500: nesting past Python's
    recursion limit, numbers too long to be a score, NaN and Infinity (ValueError)."""
    try:
        return json.loads(
            text, parse_int=bounded_int, parse_float=bounded_float, parse_constant=_no_constant
        )
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


class LimitedJSONParser(JSONParser):
    """JSON read through request.body, which Django caps at DATA_UPLOAD_MAX_MEMORY_SIZE (→ 413)."""

    def parse(
        self, stream: IO[bytes] | None, media_type: str | None = None, parser_context: Any = None
    ) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        if stream is None:
            return None
        try:
            return json_loads_strict(codecs.getreader(encoding)(stream).read())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


def body_chunks(stream: IO[bytes], *, max_bytes: int) -> Iterator[bytes]:
    """Read the body in chunks; stop with 413 once it passes max_bytes, whatever Content-Length said."""
    total = 0
    while True:
        chunk = stream.read(READ_SIZE)
        if not chunk:
            return
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLarge(
                _("The body is larger than %(limit)d bytes; split the batch.")
                % {"limit": max_bytes}
            )
        yield chunk


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        yield from parts
    if rest:
        yield rest


def json_lines_records(stream: IO[bytes], *, max_bytes: int) -> Iterator[tuple[int, Any]]:
    return jsonl_records(_lines(body_chunks(stream, max_bytes=max_bytes)))


def json_array_records(stream: IO[bytes], *, max_bytes: int) -> Iterator[tuple[int, Any]]:
    """Yield (position, element) for each element of a top-level JSON array, reading as it goes.

    Each element is decoded with the C scanner of `json` (raw_decode) as soon as it is
    complete in the buffer; the buffer holds about one read plus one element. A break in
    the array's own structure ends the stream with one error for that position, since
    nothing after it can be located reliably.
    """
    reader = _ArrayReader(body_chunks(stream, max_bytes=max_bytes))
    number = 0
    try:
        if not reader.skip_ws():
            return
        if reader.buf[reader.pos] != "[":
            raise _Broken(_("a JSON array body must start with '['"))
        reader.pos += 1
        first = True
        while True:
            if not reader.skip_ws():
                raise _Broken(_("the array is not closed with ']'"))
            if reader.buf[reader.pos] == "]":
                reader.pos += 1
                if reader.skip_ws():
                    raise _Broken(_("there is text after the closing ']'"))
                return
            if not first:
                if reader.buf[reader.pos] != ",":
                    raise _Broken(_("expected ',' or ']' between elements"))
                reader.pos += 1
                if not reader.skip_ws():
                    raise _Broken(_("the array is not closed with ']'"))
            first = False
            number += 1
            yield number, reader.element()
    except _Broken as broken:
        yield max(number, 1), LineError(max(number, 1), broken.message)


class _ArrayReader:
    """The text of a body read as it arrives: `buf` from `pos` on is not consumed yet."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.decoder = json.JSONDecoder()
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.pos = 0
        self.eof = False

    def more(self) -> bool:
        """Append the next read to what is left of the buffer; False at the end of the body."""
        if self.eof:
            return False
        chunk = next(self.chunks, None)
        try:
            text = self.utf8.decode(chunk or b"", final=chunk is None)
        except UnicodeDecodeError as exc:
            raise _Broken(
                _("the body is not valid UTF-8 (%(reason)s)") % {"reason": exc.reason}
            ) from None
        if chunk is None:
            self.eof = True
        self.buf = self.buf[self.pos :] + text
        self.pos = 0
        return True

    def skip_ws(self) -> bool:
        """Advance past whitespace; False at the end of the body."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buf):
                return True
            if not self.more():
                return False

    def element(self) -> Any:
        """The JSON value that starts at `pos`, reading more until it is complete."""
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buf, self.pos)
            except RecursionError:
                raise _Broken(_("the JSON is nested too deeply")) from None
            except json.JSONDecodeError as exc:
                # Either the element is cut off at the end of the buffer (read more) or
                # it is really malformed (report it).
                near_end = exc.pos >= len(self.buf) - 64 or exc.msg.startswith(
                    "Unterminated string"
                )
                if near_end and self.more():
                    continue
                raise _Broken(_("not valid JSON: %(msg)s") % {"msg": exc.msg}) from None
            if end == len(self.buf) and not isinstance(value, dict | list) and self.more():
                # A number or literal at the very end may continue in the next read.
                continue
            self.pos = end
            return value


class _Broken(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


def _records(stream: IO[bytes] | None, split: Any) -> Iterator[tuple[int, Any]]:
    if stream is None:
        return iter(())
    return split(stream, max_bytes=settings.PARITY_MAX_IMPORT_BYTES)


class JSONArrayImportParser(BaseParser):
    media_type = "application/json"

    def parse(
        self, stream: IO[bytes] | None, media_type: str | None = None, parser_context: Any = None
    ) -> Any:
        return _records(stream, json_array_records)


class JSONLinesImportParser(BaseParser):
    media_type = "application/x-ndjson"

    def parse(
        self, stream: IO[bytes] | None, media_type: str | None = None, parser_context: Any = None
    ) -> Any:
        return _records(stream, json_lines_records)


class JSONLinesAltImportParser(JSONLinesImportParser):
    """The other name JSON Lines goes by."""

    media_type = "application/jsonl"
