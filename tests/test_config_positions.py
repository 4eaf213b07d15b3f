"""TOML positions: every key path maps to the line it is written on."""

from __future__ import annotations

import tomllib

import pytest

from edumon.toml_positions import Loc, TomlPositions

DOCUMENT = """\
# a comment with [brackets] and key = "value"
title = "x # not a comment"
a.b."c.d" = 1

[server]
listen = "127.0.0.1:9310"   # trailing comment
"quoted key" = 'literal [not a table]'
when = 1979-05-27 07:32:00Z
text = \"\"\"
[not.a.table]
key = "still in the string" \\\"\"\"
\"\"\"

[[schools]]
code = "S1"
uplink = { switch = "core", port = "Gi0/1" }

[[schools.classrooms]]
id = "S1-1"

[[schools.classrooms]]
id = "S1-2"

[[schools]]
code = "S2"
uplink = { switch = "core", port = "Gi0/2" }
speed = 1000

[schools.extra]
note = "a sub-table of the second school"

[[schools.classrooms]]
id = "S2-1"

[credentials.district-v3]
version = "3"

[schedule.timetables.senior]
periods = [
  { start = "07:40", end = "08:25" },
  # a comment between elements
  { start = "08:35", end = "09:20" },

]
tags = ["a",
  "b"]
"""


@pytest.mark.parametrize(
    ("loc", "line"),
    [
        (("title",), 2),
        (("a",), 3),
        (("a", "b"), 3),
        (("a", "b", "c.d"), 3),
        (("server",), 5),
        (("server", "listen"), 6),
        (("server", "quoted key"), 7),
        (("server", "when"), 8),
        (("server", "text"), 9),
        (("schools",), 14),
        (("schools", 0), 14),
        (("schools", 0, "code"), 15),
        (("schools", 0, "uplink"), 16),
        (("schools", 0, "uplink", "port"), 16),
        (("schools", 0, "classrooms", 0), 18),
        (("schools", 0, "classrooms", 1, "id"), 22),
        (("schools", 1), 24),
        (("schools", 1, "uplink", "switch"), 26),
        (("schools", 1, "speed"), 27),
        (("schools", 1, "extra", "note"), 30),
        (("schools", 1, "classrooms", 0, "id"), 33),
        (("credentials", "district-v3"), 35),
        (("credentials", "district-v3", "version"), 36),
        (("schedule", "timetables", "senior", "periods"), 39),
        (("schedule", "timetables", "senior", "periods", 0, "end"), 40),
        (("schedule", "timetables", "senior", "periods", 1), 42),
        (("schedule", "timetables", "senior", "periods", 1, "end"), 42),
        (("schedule", "timetables", "senior", "tags", 1), 46),
        # Not written: the nearest enclosing table that is.
        (("schools", 1, "uplink", "speed"), 26),
        (("schools", 0, "classrooms", 1, "name"), 21),
        (("credentials", "district-v3", "user"), 35),
        (("mqtt", "listen"), None),
    ],
)
def test_line_of(loc: Loc, line: int | None) -> None:
    tomllib.loads(DOCUMENT)  # the scanner's premise: a document tomllib accepts
    assert TomlPositions.scan(DOCUMENT).line_of(loc) == line


def test_has_is_only_what_is_written() -> None:
    positions = TomlPositions.scan(DOCUMENT)
    assert positions.has(("schools", 1, "extra"))
    assert not positions.has(("schools", 1, "extra", "missing"))


def test_crlf_line_endings() -> None:
    text = '[a]\r\nb = 1\r\n\r\n[[c]]\r\nd = "x"\r\n'
    positions = TomlPositions.scan(text)
    assert positions.line_of(("a", "b")) == 2
    assert positions.line_of(("c", 0, "d")) == 5


def test_text_it_cannot_follow_gives_a_partial_index_not_an_error() -> None:
    positions = TomlPositions.scan('a = 1\nb = "unterminated\nc = 3\n')
    assert positions.line_of(("a",)) == 1
    assert positions.line_of(("c",)) is None
