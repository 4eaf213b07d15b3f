"""edumon: monitoring for education metropolitan-area networks."""

__version__ = "0.1.0"
