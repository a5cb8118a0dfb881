"""The `network` section: VPC, zones, NAT, flow logs."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
)

from planning import aws_facts
from planning.settings.base import RFC_1918, LogRetentionDays, _Model


class NetworkSettings(_Model):
    """VPC layout. Subnets are carved as /20s (4,091 usable addresses each) from `vpc_cidr`."""

    vpc_cidr: str = "10.40.0.0/16"
    """The VPC's IPv4 block: RFC 1918 space, /16 to /20 (each zone takes a /20 public
    and a /20 private subnet)."""
    zones: list[str] = Field(min_length=2, max_length=6)
    """Availability Zones of the region, 2 to 6, each once: the fleet spreads across them and
    the plan keeps one zone's worth of headroom."""
    nat_gateways: Literal["one", "per_zone"] = "per_zone"
    """`per_zone` (a zone's loss leaves the others' egress) or `one` (cheaper; egress goes
    with its zone)."""
    flow_log_retention_days: LogRetentionDays = 90
    """Days CloudWatch Logs keeps the VPC flow logs (one of CloudWatch's retention
    values)."""

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        try:
            net = ipaddress.IPv4Network(value)
        except ValueError as exc:
            raise ValueError(f"must be an IPv4 CIDR block such as 10.40.0.0/16 ({exc})") from exc
        if not 16 <= net.prefixlen <= 20:
            raise ValueError(
                "prefix must be between /16 and /20 (AWS allows /16 to /28; "
                "Floodgate needs room for 2 subnets per zone)"
            )
        if not any(net.subnet_of(block) for block in RFC_1918):
            raise ValueError(
                f"must lie in a private (RFC 1918) range: {', '.join(map(str, RFC_1918))}"
            )
        return value

    @field_validator("zones")
    @classmethod
    def _distinct(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("zones must be distinct")
        # Checked here, with the region from the validation context, so a bad zone is reported
        # with every other field error (a model-level check runs only when all fields are good).
        region = (info.context or {}).get("region")
        known = aws_facts.REGION_ZONES.get(region or "")
        if known is not None:  # an unknown region is reported on aws:region itself
            for zone in value:
                if zone not in known:
                    raise ValueError(
                        f"{zone!r} is not an Availability Zone of {region}; allowed: {list(known)}"
                    )
        return value
