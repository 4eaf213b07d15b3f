"""Bandwidth target profiles: what "compliant" means for a school uplink and a classroom link."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Targets:
    """Minimum link speeds in Mbit/s; None means the profile sets no target for that link."""

    profile: str
    uplink_mbps: float | None
    classroom_mbps: float | None


# district-1000m: "1000M光纤进校, 1000M到班" (the reference county's plan: docs/architecture.md).
# national-2021: 万兆到县、千兆到校、百兆到班 (the Ministry's 2021 guidance).
# legacy-2012: the ten-year plan's ≥100M to every school, no classroom target.
PROFILES: dict[str, Targets] = {
    "district-1000m": Targets("district-1000m", 1000, 1000),
    "national-2021": Targets("national-2021", 1000, 100),
    "legacy-2012": Targets("legacy-2012", 100, None),
}


def resolve_targets(
    profile: str, uplink_mbps: float | None = None, classroom_mbps: float | None = None
) -> Targets:
    """Return a profile's targets with any explicit numbers taking precedence.

    Raises:
        KeyError: the profile name is not one of PROFILES and is not "custom".
    """
    if profile == "custom":
        return Targets("custom", uplink_mbps, classroom_mbps)
    base = PROFILES[profile]
    return Targets(
        profile,
        uplink_mbps if uplink_mbps is not None else base.uplink_mbps,
        classroom_mbps if classroom_mbps is not None else base.classroom_mbps,
    )
