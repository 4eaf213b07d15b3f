"""`python -m edumon` runs the command line."""

from edumon.cli import main

main()
