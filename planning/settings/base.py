"""What every section shares: the base model (unknown keys refused, no true-as-1, no
inf/NaN, renamed keys named), the error type, the reusable checks and the AWS patterns."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from planning import aws_facts

PROJECT = "floodgate"
SETTINGS_KEY = f"{PROJECT}:settings"
REGION_KEY = "aws:region"
STACKS_DIR = Path(__file__).resolve().parents[2] / "stacks"

_INSTANCE_TYPE = re.compile(r"^(?P<family>[a-z][a-z0-9-]*)\.(?P<size>[a-z0-9]+)$")
# Graviton families carry a "g" right after the generation digit: t4g, m7g, c7gn, r8g.
_ARM_FAMILY = re.compile(r"^[a-z]+\d+g[a-z]*$")
_ACM_ARN = re.compile(r"^arn:aws:acm:(?P<region>[a-z0-9-]+):\d{12}:certificate/[0-9a-f-]{36}$")
_AMI_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")
MAX_GROUP_SIZE, MAX_CAPACITY_UNITS = 10_000, 100_000
"""Floodgate's guards against a typo (10^12 instances and 10^9 LCUs were accepted), far above
any portal's night; AWS's own account quotas (EC2 vCPUs, ELB capacity) bind first and are
checked by `make preflight`."""
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
    r"[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
)
"""An address SNS can deliver to: a local part, then a DNS name (no spaces, one @, a TLD)."""
_HOSTED_ZONE = re.compile(r"Z[A-Z0-9]{1,31}")
"""Route 53 hosted-zone ids: Z then upper-case letters and digits (as GetHostedZone returns
them, without the /hostedzone/ prefix)."""
_DOMAIN = re.compile(r"^(?=.{1,253}$)(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class SettingsError(ValueError):
    """Invalid stack settings; the message lists every problem as `key: message (got value)`."""


RFC_1918 = tuple(
    ipaddress.IPv4Network(b) for b in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)
"""`is_private` also admits loopback, link-local and other reserved blocks a VPC cannot use."""


class _Model(BaseModel):
    # Unknown keys are typos, not extensions: reject them so a misspelt limit is never ignored.
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True
    )

    RENAMED: ClassVar[dict[str, str]] = {}
    """Keys a section no longer takes, each with what replaced it."""

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, value: Any) -> Any:
        """A renamed key is named with its replacement, not refused as unknown."""
        if isinstance(value, Mapping):
            for old, new in cls.RENAMED.items():
                if old in value:
                    raise _at(old, value[old], f"renamed: set {new} instead")
        return value

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        """YAML's true is not 1: `min_size: true` was accepted as a group of one."""
        if isinstance(value, bool) and info.field_name is not None:
            annotation = cls.model_fields[info.field_name].annotation
            if annotation is not bool and bool not in get_args(annotation):
                raise ValueError("must be a number or text, not true/false")
        return value


Port = Annotated[int, Field(ge=1, le=65535)]


NESTED_ERROR = "floodgate_nested_key"
"""The error type of `_at`: its context carries the key, the value and the message."""


def _at(key: str, value: object, message: str) -> PydanticCustomError:
    """A model-level error that reports against a nested key rather than the whole model."""
    return PydanticCustomError(
        NESTED_ERROR, "{message}", {"key": key, "value": repr(value), "message": message}
    )


_T = TypeVar("_T")


def _check_range(value: int, bounds: tuple[int, int], unit: str) -> int:
    low, high = bounds
    if not low <= value <= high:
        raise ValueError(f"must be between {low} and {high}{unit}")
    return value


def _check_one_of(value: _T, allowed: Collection[_T], listing: str) -> _T:
    """`value` if AWS accepts it (it is in `allowed`), else "must be one of <listing>"."""
    if value not in allowed:
        raise ValueError(f"must be one of {listing}")
    return value


def _check_retention(value: int) -> int:
    retention = aws_facts.LOG_RETENTION_DAYS
    return _check_one_of(value, retention, f"CloudWatch's retention periods {retention}")


def _check_domain(value: str) -> str:
    if not _DOMAIN.match(value):
        raise ValueError("must be a lower-case DNS name such as portal.example.ca")
    return value


LogRetentionDays = Annotated[int, AfterValidator(_check_retention)]
"""Days CloudWatch Logs keeps a log group: one of the retention periods AWS accepts."""
DomainName = Annotated[str, AfterValidator(_check_domain)]
"""A lower-case DNS name (a wildcard first label allowed)."""


def architecture(instance_type: str) -> Literal["arm64", "x86_64"]:
    """CPU architecture of an EC2 instance type, from its family name."""
    family = instance_type.split(".", 1)[0]
    return "arm64" if _ARM_FAMILY.match(family) else "x86_64"
