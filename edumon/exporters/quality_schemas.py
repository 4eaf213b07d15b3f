"""Response models of GET /api/v1/data-quality (kept apart from the shared schemas module)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from edumon.domain.quality import QualityKind
from edumon.exporters.schemas import Page


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class QualityWarningOut(_Out):
    """One contradiction between what edumon sees and the inventory, with the row to fix."""

    kind: QualityKind = Field(description="What contradicts the inventory (a stable code)")
    kind_name: str = Field(description="The kind in Chinese")
    school: str
    school_name: str
    classroom: str | None = None
    classroom_name: str | None = None
    switch: str | None = None
    switch_name: str | None = None
    port: str | None = None
    terminal: str | None = None
    other_school: str | None = Field(
        None, description="terminal_wrong_school: the school the terminal reports from"
    )
    other_school_name: str | None = None
    other_classroom: str | None = Field(
        None, description="two_classrooms_one_port: the other classroom on the port"
    )
    other_classroom_name: str | None = None
    port_speed_mbps: float | None = None
    terminal_speed_mbps: float | None = None
    since: datetime | None = Field(
        None, description="When the contradiction was first visible (district time zone)"
    )
    message: str = Field(description="What is wrong, in Chinese")
    message_en: str
    fix: str = Field(description="The inventory row to check, in Chinese")
    fix_en: str


class QualityCounts(_Out):
    """Warnings matching the filters, by kind."""

    total: int
    terminal_online_port_down: int
    speed_mismatch: int
    two_classrooms_one_port: int
    terminal_wrong_school: int


class QualityList(_Out):
    generated_at: datetime
    counts: QualityCounts
    warnings: list[QualityWarningOut]
    page: Page
