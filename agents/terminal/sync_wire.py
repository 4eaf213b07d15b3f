"""Copy edumon/wire.py into the agent package (``--check``: only report whether they differ).

The agent ships without the edumon package, so it carries a byte-identical copy of the wire
protocol module; run this after every change to ``edumon/wire.py``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORIGINAL = HERE.parent.parent / "edumon" / "wire.py"
COPY = HERE / "edumon_terminal_agent" / "wire.py"


def main() -> int:
    """Copy, or with ``--check`` exit 1 when the copy is stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if different")
    args = parser.parse_args()
    same = COPY.is_file() and COPY.read_bytes() == ORIGINAL.read_bytes()
    if args.check:
        if not same:
            sys.stderr.write(f"{COPY} differs from {ORIGINAL}: run {Path(__file__).name}\n")
        return 0 if same else 1
    if not same:
        shutil.copyfile(ORIGINAL, COPY)
        sys.stderr.write(f"updated {COPY}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
