"""Arrangement files on disk: the ones shipped with edumon and a district's calendar_dir."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from edumon.workcalendar.arrangement import Arrangement, ArrangementError, parse_arrangement

SHIPPED_DIR = Path(__file__).with_name("arrangements")
"""The arrangements known when this edumon was released, one ``YYYY.toml`` per year."""

_FILE_NAME = re.compile(r"^(\d{4})\.toml$")


@dataclass(frozen=True, slots=True)
class DirectoryScan:
    """What one reading of a directory found: usable arrangements, the files left out (or the
    directory itself, when it cannot be read) and their problems, one line each."""

    directory: Path
    arrangements: dict[int, Arrangement] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()


class ArrangementReader:
    """Reads arrangement directories, parsing a file again only when it has changed.

    Re-reading every few minutes is what lets a district drop next year's file into its
    calendar_dir without a restart; the stat check keeps that to a directory listing.
    """

    def __init__(self) -> None:
        self._parsed: dict[Path, tuple[tuple[int, int], Arrangement | ArrangementError]] = {}

    def read(self, directory: Path) -> DirectoryScan:
        """Every ``*.toml`` file in ``directory``; other files (notes, backups) are left alone.

        Never raises for bad input: a missing directory, an unreadable or invalid file is
        a problem line naming the file (and the line and key where it can).
        """
        try:
            paths = sorted(p for p in directory.iterdir() if p.suffix == ".toml")
        except FileNotFoundError:
            return DirectoryScan(
                directory,
                problems=(
                    f"{directory}: the calendar directory does not exist; create it or correct "
                    "[schedule] calendar_dir",
                ),
                rejected=(str(directory),),
            )
        except OSError as exc:
            return DirectoryScan(
                directory,
                problems=(f"{directory}: cannot read the directory: {exc.strerror}",),
                rejected=(str(directory),),
            )
        arrangements: dict[int, Arrangement] = {}
        problems: list[str] = []
        rejected: list[str] = []
        for path in paths:
            result = self.read_file(path)
            if isinstance(result, ArrangementError):
                problems.extend(result.problems)
                rejected.append(str(path))
            else:
                arrangements[result.year] = result
        return DirectoryScan(directory, arrangements, tuple(problems), tuple(rejected))

    def read_file(self, path: Path) -> Arrangement | ArrangementError:
        """One file, named ``YYYY.toml`` after its year; the error instead of raising it."""
        match = _FILE_NAME.match(path.name)
        if match is None:
            return ArrangementError(
                [
                    f"{path}: name an arrangement file after the year of its notice, e.g. "
                    "2027.toml (files not ending in .toml are ignored)"
                ]
            )
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size)
            cached = self._parsed.get(path)
            if cached is not None and cached[0] == key:
                return cached[1]
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            return ArrangementError([f"{path}: cannot read the file: {exc.strerror}"])
        except UnicodeDecodeError:
            return ArrangementError([f"{path}: the file is not UTF-8 text; save it as UTF-8"])
        result: Arrangement | ArrangementError
        try:
            result = parse_arrangement(text, where=str(path), year=int(match[1]))
        except ArrangementError as exc:
            result = exc
        self._parsed[path] = (key, result)
        return result


def check_directory(directory: Path) -> DirectoryScan:
    """Read ``directory`` once, for ``edumon check-config``."""
    return ArrangementReader().read(directory)
