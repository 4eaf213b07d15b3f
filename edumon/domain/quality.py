"""Data-quality warnings: what the network and the terminals say that contradicts the inventory.

Pure: the checks read state and inventory handed to them and return warnings; nothing here
does I/O. ``edumon.quality_view`` hands them the running daemon's state.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QualityWarning:
    """One contradiction between what edumon sees and the inventory, with the row to fix.

    ``kind`` is a stable code (e.g. ``terminal_online_port_down``); ``message`` is Chinese,
    ``message_en`` English; ``fix`` names the inventory row to check, in Chinese.
    """

    kind: str
    school: str
    message: str
    message_en: str
    fix: str
    classroom: str | None = None
    switch: str | None = None
    port: str | None = None
    terminal: str | None = None
