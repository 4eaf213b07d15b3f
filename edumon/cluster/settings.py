"""The ``[cluster]`` table: this collector's id, the number of shards, the lease timing."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_SHARDS = 4096

ClusterId = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
]


class ClusterConfig(BaseModel):
    """Scale-out: collectors share one broker and one database (docs/city-deployment.md).

    Every collector of a district has the same ``shards`` and ``lease_seconds`` and its own
    ``collector_id``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    collector_id: ClusterId
    """This collector's name, unique in the district (e.g. the host name)."""
    shards: int = Field(16, ge=1, le=MAX_SHARDS)
    """Schools are hashed into this many shards; a shard is the unit a collector holds.
    Several times the number of collectors, so the shards spread evenly; never changed while
    any collector runs (a school would move to another shard)."""
    lease_seconds: float = Field(30, ge=3, le=600)
    """A shard whose holder has not renewed its lease for this long is taken over."""
    renew_seconds: float | None = Field(None, gt=0)
    """How often leases are renewed and free shards looked for; default a third of
    ``lease_seconds``."""

    @model_validator(mode="after")
    def _renew(self) -> ClusterConfig:
        if self.renew_seconds is not None and self.renew_seconds * 2 > self.lease_seconds:
            raise ValueError(
                "renew_seconds 至多为 lease_seconds 的一半（否则一次续约失败就会丢失分片）/ "
                "renew_seconds must be at most half of lease_seconds (else one failed renewal "
                "loses the shards)"
            )
        return self

    @property
    def renew_every(self) -> float:
        """Seconds between two rounds of the lease loop."""
        return self.renew_seconds if self.renew_seconds is not None else self.lease_seconds / 3
