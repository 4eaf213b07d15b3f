"""Log output: the readable text lines (default) or one JSON object per line for Loki/ELK.

A JSON record is ``{"ts", "level", "logger", "msg", ...}``: ``ts`` in RFC 3339 UTC with
milliseconds, ``level`` in lower case, ``msg`` the formatted message, then the structured fields
the call site passed as ``extra={...}`` (``device``, ``school``, ``reason``, ...), and ``exc``
with the traceback when there is one. Extra fields are what the message already says, split out
for queries: like messages, they never carry a secret.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO

LogFormat = Literal["text", "json"]
LOG_FORMATS: Final = ("text", "json")
LOG_FORMAT_ENV: Final = "EDUMON_LOG_FORMAT"
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Every attribute a bare LogRecord has (plus those Formatter and Python 3.12 add): whatever else
# a record carries came from ``extra``.
_RECORD_ATTRS: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
# uvicorn passes its message again with ANSI colours for its own console formatter.
_IGNORED_EXTRA: Final = frozenset({"color_message"})
_CORE_KEYS: Final = ("ts", "level", "logger", "msg", "exc", "stack")


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (newlines inside strings are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object: core fields first, then the call site's extras."""
        out: dict[str, Any] = {
            "ts": _rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key in _RECORD_ATTRS or key in _IGNORED_EXTRA or key.startswith("_"):
                continue
            # A field named like a core one must not overwrite it; it keeps its value apart.
            out[f"{key}_" if key in _CORE_KEYS else key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # default=str: an extra that is not JSON (a Path, an enum, bytes) is still written.
        return json.dumps(out, ensure_ascii=False, default=str)


def _rfc3339(created: float) -> str:
    stamp = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def formatter_for(log_format: LogFormat) -> logging.Formatter:
    """The formatter of ``log_format``: the text lines edumon always wrote, or JSON."""
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT)


class _StderrHandler(logging.StreamHandler[TextIO]):
    """The handler ``configure_logging`` installs (told apart so a second call replaces it)."""


def configure_logging(
    level: str, log_format: LogFormat = "text", stream: TextIO | None = None
) -> None:
    """Send every logger's records at ``level`` and above to ``stream`` (stderr) in a format.

    Called again (``run`` and ``demo`` choose the format after the group chose the level), it
    replaces its own handler rather than adding a second one. Like ``logging.basicConfig``, it
    leaves alone a root logger that something else has configured (a program that embeds
    edumon, or pytest).

    Args:
        level: ``debug``, ``info``, ``warning`` or ``error``.
        log_format: ``text`` (default) or ``json``.
        stream: where to write; stderr by default.
    """
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _StderrHandler)]
    if len(ours) < len(root.handlers):
        return
    for old in ours:
        root.removeHandler(old)
    handler = _StderrHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter_for(log_format))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
