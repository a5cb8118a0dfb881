"""The `fleet` section: the web autoscaling group, its warm pool and its scaling."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from planning import aws_facts
from planning.settings.base import (
    _AMI_ID,
    _INSTANCE_TYPE,
    MAX_GROUP_SIZE,
    _at,
    _Model,
    architecture,
)

USER_DATA_MAX_BYTES = 10_000
"""`fleet.user_data` at most: base64 (x 4/3) inside the ~2.5 KB bootstrap stays within EC2's
16 KB of user data (components/web_fleet.py checks the whole)."""


class WarmPoolSettings(_Model):
    """Pre-initialised stopped instances: ready in ~30-60 s instead of 3-5 min cold.

    AWS attaches warm pools only to groups with one launch template and no Spot, so a fleet
    with a warm pool has exactly one instance type and spot_pct 0.
    """

    min_size: int = Field(default=1, ge=0)
    """Stopped instances kept ready outside an event; the pre-scale job sizes the pool for
    each event (`prescale.warm_pool_share_pct`)."""
    max_prepared: int | None = Field(default=None, ge=0)
    """Upper bound of group + pool (MaxGroupPreparedCapacity). Unset, AWS would keep
    max_size - desired instances prepared (114 for prod); None here means the fleet's
    min_size + this pool's min_size, so the pool holds min_size whatever desired is."""
    state: Literal["Stopped", "Hibernated", "Running"] = "Stopped"
    """What pool instances are kept as: `Stopped` (volumes only are billed), `Hibernated`
    (memory kept; needs an instance type that supports it) or `Running` (billed in full)."""


class ScalingSettings(_Model):
    """Target tracking; both policies run, the one asking for more capacity wins."""

    requests_per_target: int = Field(default=1000, ge=1)
    """ALBRequestCountPerTarget target, requests per instance per minute."""
    cpu_target_pct: float = Field(default=50.0, gt=0, le=90)
    """Average CPU (%) the CPU target tracking policy aims at."""


class FleetSettings(_Model):
    """Web autoscaling group."""

    instance_types: list[str]
    """EC2 instance types (family.size, e.g. m7i.large); exactly one with a warm pool."""
    min_size: int = Field(ge=0, le=MAX_GROUP_SIZE)
    """Instances the group never goes below outside events (AWS: up to 10,000)."""
    max_size: int = Field(ge=1, le=MAX_GROUP_SIZE)
    """Instances the group never goes above: what the fleet carries with a zone lost is
    checked against the planned peak."""
    on_demand_base: int = Field(default=0, ge=0)
    """Instances always on demand, before any spot share applies."""
    spot_pct: int = Field(default=0, ge=0, le=100)
    """Share of capacity above the base that may be spot."""
    ami_id: str
    """The AMI, pinned per stack: a new one rolls the whole fleet and warm pool, so it changes
    only when someone bumps it (latest AL2023: `aws ssm get-parameter --name
    /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64`)."""
    user_data: str | None = None
    """The application's bootstrap script; None installs a minimal server answering the
    health check. It runs once, on the instance's first boot, inside Floodgate's bootstrap
    (functions/instance/bootstrap.sh), which then holds the instance out of the warm pool and
    out of service until the health check answers. It must install the application as a
    service that starts at boot: a warm-pool instance is stopped after that first boot and
    started again when it enters service, and cloud-init does not run user data again. At
    most 10,000 bytes (EC2 takes 16 KB of user data; the bootstrap and base64 take the rest)."""
    root_volume_gb: int = Field(default=20, ge=8, le=16384)
    """gp3 root volume per instance, GB (AWS: 8-16,384); a stopped pool instance still
    pays for it."""
    default_warmup_s: int = Field(default=120, ge=0, le=3600)
    """Seconds a new instance's metrics are kept out of scaling decisions (the group's
    default instance warmup)."""
    launch_hook_timeout_s: int = Field(default=900, ge=30, le=7200)
    """Seconds the launch lifecycle hook holds a new instance (into the warm pool or into
    service) for its bootstrap to finish and say so (CompleteLifecycleAction); past it, AWS
    abandons the instance and launches another. AWS allows 30-7,200 (default 3,600). At least
    `prescale.cold_launch_s`."""
    health_check_grace_s: int = Field(default=180, ge=0)
    """Seconds after launch before the ALB's health check can mark an instance unhealthy."""
    requests_per_instance_per_s: float = Field(default=100.0, gt=0)
    """Origin requests one instance serves at the scaling target; drives peak capacity checks."""
    warm_pool: WarmPoolSettings | None = None
    """Stopped, pre-initialised instances (None: no pool)."""
    scaling: ScalingSettings = ScalingSettings()
    """Target tracking on requests per target and on CPU."""

    @field_validator("instance_types")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must list at least one instance type, e.g. [m7i.large]")
        bad = [t for t in value if not _INSTANCE_TYPE.match(t)]
        if bad:
            raise ValueError(f"{bad} are not instance type names like m7i.large")
        unknown = [
            t
            for t in value
            if t.split(".")[0] not in aws_facts.INSTANCE_FAMILIES
            or t.split(".")[1] not in aws_facts.INSTANCE_SIZES
        ]
        if unknown:
            raise ValueError(
                f"{unknown} are not EC2 instance types Floodgate knows; families: "
                f"{sorted(aws_facts.INSTANCE_FAMILIES)}"
            )
        if len(set(value)) != len(value):
            raise ValueError("instance types must be distinct")
        if len({architecture(t) for t in value}) > 1:
            raise ValueError(
                "mixes arm64 (Graviton) and x86_64 types; one launch template has one AMI"
            )
        if len(value) > 40:
            raise ValueError("AWS allows at most 40 instance type overrides")
        return value

    @field_validator("user_data")
    @classmethod
    def _user_data_fits(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("#!"):
            raise ValueError(
                "must be a script starting with #! (e.g. #!/bin/bash): Floodgate's bootstrap "
                "runs it; cloud-config and MIME multi-part are not taken"
            )
        if value is not None and len(value.encode()) > USER_DATA_MAX_BYTES:
            raise ValueError(
                f"is {len(value.encode()):,} bytes; at most {USER_DATA_MAX_BYTES:,} fit in EC2's "
                "16 KB of user data with Floodgate's bootstrap: fetch the rest from S3 or bake "
                "it into the AMI"
            )
        return value

    @field_validator("ami_id")
    @classmethod
    def _ami(cls, value: str) -> str:
        if not _AMI_ID.match(value):
            raise ValueError("must look like ami-0123456789abcdef0")
        return value

    @model_validator(mode="after")
    def _sizes(self) -> Self:
        if self.max_size < self.min_size:
            raise _at("max_size", self.max_size, f"must be >= min_size ({self.min_size})")
        if self.on_demand_base > self.max_size:
            raise _at(
                "on_demand_base", self.on_demand_base, f"must be <= max_size ({self.max_size})"
            )
        pool = self.warm_pool
        if pool is None:
            return self
        if len(self.instance_types) > 1:
            raise _at(
                "warm_pool",
                "set",
                f"needs exactly one instance type, got {self.instance_types}: AWS cannot "
                "attach a warm pool to a group with a mixed instances policy",
            )
        if self.spot_pct:
            raise _at(
                "warm_pool",
                "set",
                f"needs spot_pct 0, got {self.spot_pct}: AWS cannot attach a warm pool "
                "to a group that launches Spot Instances",
            )
        if pool.min_size > self.max_size:
            raise _at("warm_pool.min_size", pool.min_size, f"must be <= max_size ({self.max_size})")
        if pool.max_prepared is not None and pool.max_prepared > self.max_size:
            raise _at(
                "warm_pool.max_prepared",
                pool.max_prepared,
                f"must be <= max_size ({self.max_size}): group plus pool never exceeds it",
            )
        return self

    @property
    def architecture(self) -> Literal["arm64", "x86_64"]:
        return architecture(self.instance_types[0])

    @property
    def scaling_target_pct(self) -> float:
        """The load (% of requests_per_instance_per_s) target tracking holds the fleet at."""
        return 100 * self.scaling.requests_per_target / 60 / self.requests_per_instance_per_s

    def prepared_capacity(self, pool_size: int) -> int:
        """MaxGroupPreparedCapacity that keeps exactly `pool_size` instances in the warm pool:
        AWS sizes the pool as max(pool min size, this - desired), and desired >= min_size."""
        pool = self.warm_pool
        if pool is not None and pool.max_prepared is not None:
            return pool.max_prepared
        return min(self.max_size, self.min_size + pool_size)
