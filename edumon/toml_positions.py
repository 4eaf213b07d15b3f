"""Where each key of a TOML document sits: key paths mapped to line numbers.

``tomllib`` returns plain dicts and lists, so a validation error knows *which* value is wrong
(``schools[19].kind``) but not *where* it is written. This module scans the text once more and
records, for every key path, the line where it is defined: tables by their ``[header]`` or
``[[header]]`` line, keys and inline tables by the line of ``key =``, array elements by the line
they start on. Paths are tuples shaped like pydantic's error locations (``("schools", 19,
"kind")``), so a location maps to a line without any string matching.

The scanner assumes text that ``tomllib`` has already accepted: it skips values rather than
checking them, and only has to understand enough of TOML to follow keys, headers, strings (where
a ``#``, ``=`` or bracket means nothing), arrays and inline tables.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Sequence

Loc = tuple[str | int, ...]

_BARE_KEY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
# Characters that end a bare value (number, boolean, date): date-times may contain a space.
_VALUE_END = frozenset(",]}#\n\r")


class TomlPositions:
    """Lines of the keys, tables and array elements of one TOML document.

    Build it with ``TomlPositions.scan(text)``; ask with ``line_of(loc)``.
    """

    def __init__(self, lines: dict[Loc, int]) -> None:
        self._lines = lines

    @classmethod
    def scan(cls, text: str) -> TomlPositions:
        """Index a document ``tomllib`` has accepted.

        Text it has not accepted yields a partial index rather than an error: positions are a
        help for messages, never a reason to fail.
        """
        scanner = _Scanner(text)
        with contextlib.suppress(IndexError, ValueError):
            scanner.document()
        return cls(scanner.lines())

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of ``loc``, or of its nearest enclosing table or array element.

        A key that is missing (or was never written, like a default) is reported at the table
        that lacks it; None when not even the top-level key is in the document.
        """
        path = tuple(loc)
        while path:
            line = self._lines.get(path)
            if line is not None:
                return line
            path = path[:-1]
        return None

    def has(self, loc: Sequence[str | int]) -> bool:
        """Whether ``loc`` itself is written in the document."""
        return tuple(loc) in self._lines


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.offsets: dict[Loc, int] = {}
        # Arrays of tables seen so far: their path (with the indexes of enclosing arrays of
        # tables) -> number of elements.
        self.aot: dict[Loc, int] = {}
        self._newlines = [n for n, c in enumerate(text) if c == "\n"]

    def lines(self) -> dict[Loc, int]:
        return {loc: bisect.bisect_left(self._newlines, at) + 1 for loc, at in self.offsets.items()}

    # -- low level ---------------------------------------------------------------------------

    def peek(self, n: int = 0) -> str:
        at = self.i + n
        return self.text[at] if at < len(self.text) else ""

    def skip_blank(self) -> None:
        """Spaces and tabs."""
        while self.peek() in (" ", "\t") and self.peek():
            self.i += 1

    def skip_comment(self) -> None:
        if self.peek() == "#":
            end = self.text.find("\n", self.i)
            self.i = len(self.text) if end < 0 else end

    def skip_space(self) -> None:
        """Whitespace, newlines and comments (inside arrays, between statements)."""
        while True:
            self.skip_blank()
            self.skip_comment()
            if self.peek() in ("\n", "\r") and self.peek():
                self.i += 1
                continue
            return

    def expect(self, s: str) -> None:
        if not self.text.startswith(s, self.i):
            raise ValueError(f"expected {s!r} at {self.i}")
        self.i += len(s)

    # -- keys --------------------------------------------------------------------------------

    def key(self) -> list[str]:
        """A dotted key: ``a``, ``"a b".c``, ``a . 'b'``."""
        parts = [self.simple_key()]
        while True:
            self.skip_blank()
            if self.peek() != ".":
                return parts
            self.i += 1
            self.skip_blank()
            parts.append(self.simple_key())

    def simple_key(self) -> str:
        c = self.peek()
        if c == '"':
            return self.basic_string()
        if c == "'":
            return self.literal_string()
        start = self.i
        while self.peek() in _BARE_KEY and self.peek():
            self.i += 1
        if self.i == start:
            raise ValueError(f"no key at {start}")
        return self.text[start : self.i]

    # -- strings -----------------------------------------------------------------------------

    def basic_string(self) -> str:
        if self.text.startswith('"""', self.i):
            self.i += 3
            end = self.text.find('"""', self.i)
            while end >= 0 and _escaped(self.text, end):
                end = self.text.find('"""', end + 1)
            if end < 0:
                raise ValueError("unterminated string")
            # Up to two quotes may end the content right before the closing delimiter.
            while self.text.startswith('"', end + 3):
                end += 1
            self.i = end + 3
            return ""  # multi-line strings are never keys; the content is not needed
        self.i += 1
        out: list[str] = []
        while True:
            c = self.peek()
            if c in ("", "\n"):
                raise ValueError("unterminated string")
            self.i += 1
            if c == '"':
                return "".join(out)
            if c != "\\":
                out.append(c)
                continue
            e = self.peek()
            self.i += 1
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
            elif e in ("u", "U"):
                width = 4 if e == "u" else 8
                out.append(chr(int(self.text[self.i : self.i + width], 16)))
                self.i += width
            else:
                out.append(e)

    def literal_string(self) -> str:
        if self.text.startswith("'''", self.i):
            end = self.text.find("'''", self.i + 3)
            if end < 0:
                raise ValueError("unterminated string")
            while self.text.startswith("'", end + 3):
                end += 1
            self.i = end + 3
            return ""
        end = self.text.find("'", self.i + 1)
        if end < 0:
            raise ValueError("unterminated string")
        value = self.text[self.i + 1 : end]
        self.i = end + 1
        return value

    # -- values ------------------------------------------------------------------------------

    def value(self, path: Loc) -> None:
        c = self.peek()
        if c == '"':
            self.basic_string()
        elif c == "'":
            self.literal_string()
        elif c == "[":
            self.array(path)
        elif c == "{":
            self.inline_table(path)
        else:
            start = self.i
            while self.peek() not in _VALUE_END and self.peek():
                self.i += 1
            if self.i == start:
                raise ValueError(f"no value at {start}")

    def array(self, path: Loc) -> None:
        self.expect("[")
        n = 0
        while True:
            self.skip_space()
            if self.peek() == "]":
                self.i += 1
                return
            self.offsets[(*path, n)] = self.i
            self.value((*path, n))
            n += 1
            self.skip_space()
            if self.peek() == ",":
                self.i += 1

    def inline_table(self, path: Loc) -> None:
        self.expect("{")
        while True:
            self.skip_space()  # TOML 1.1 allows newlines here; harmless for 1.0
            if self.peek() == "}":
                self.i += 1
                return
            self.key_value(path)
            self.skip_space()
            if self.peek() == ",":
                self.i += 1

    def key_value(self, table: Loc) -> None:
        start = self.i
        parts = self.key()
        path = table
        for part in parts[:-1]:  # dotted keys define the tables they pass through
            path = (*path, part)
            self.offsets.setdefault(path, start)
        path = (*path, parts[-1])
        self.offsets[path] = start
        self.skip_blank()
        self.expect("=")
        self.skip_blank()
        self.value(path)

    # -- document ----------------------------------------------------------------------------

    def header(self) -> Loc:
        """A ``[table]`` or ``[[array.of.tables]]`` line; returns the table's path."""
        start = self.i
        many = self.text.startswith("[[", self.i)
        self.i += 2 if many else 1
        self.skip_blank()
        parts = self.key()
        self.skip_blank()
        self.expect("]]" if many else "]")
        path: Loc = ()
        for part in parts[:-1]:
            path = (*path, part)
            if path in self.aot:  # [[schools]] then [schools.x] or [[schools.classrooms]]
                path = (*path, self.aot[path] - 1)
            self.offsets.setdefault(path, start)
        path = (*path, parts[-1])
        if many:
            n = self.aot.get(path, 0)
            self.aot[path] = n + 1
            self.offsets.setdefault(path, start)
            path = (*path, n)
        self.offsets[path] = start
        return path

    def document(self) -> None:
        table: Loc = ()
        while True:
            self.skip_space()
            c = self.peek()
            if not c:
                return
            if c == "[":
                table = self.header()
            else:
                self.key_value(table)
            self.skip_blank()
            self.skip_comment()


def _escaped(text: str, at: int) -> bool:
    """Whether the character at ``at`` is escaped by an odd run of backslashes."""
    n = 0
    while at - n - 1 >= 0 and text[at - n - 1] == "\\":
        n += 1
    return n % 2 == 1
