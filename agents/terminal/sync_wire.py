"""Copy edumon/wire.py and edumon/spool.py into the agent package (``--check``: only report).

The agent ships without the edumon package, so it carries byte-identical copies of the wire
protocol module and of the disk spool; run this after every change to either original.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = ("wire.py", "spool.py")
ORIGINALS = HERE.parent.parent / "edumon"
COPIES = HERE / "edumon_terminal_agent"


def main() -> int:
    """Copy, or with ``--check`` exit 1 when a copy is stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if different")
    args = parser.parse_args()
    stale = 0
    for name in SHARED:
        original, copy = ORIGINALS / name, COPIES / name
        if copy.is_file() and copy.read_bytes() == original.read_bytes():
            continue
        stale += 1
        if args.check:
            sys.stderr.write(f"{copy} differs from {original}: run {Path(__file__).name}\n")
        else:
            shutil.copyfile(original, copy)
            sys.stderr.write(f"updated {copy}\n")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
