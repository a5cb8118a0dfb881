"""Helpers the tests share (fixtures live in conftest.py): stack configs and settings with a
change, the whole program evaluated once per stack, boto3 clients for moto's server."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3

from planning.settings import STACKS_DIR, Settings, parse_stack_config
from scripts.offline_cloud import OfflineRun, run_offline, stack_config
from scripts.prescale import RETRIES

__all__ = [
    "REGION",
    "STACKS",
    "TEST_NOW",
    "client",
    "settings_with",
    "stack_config",
    "stack_run",
    "with_setting",
]

TEST_NOW = "2028-10-01T00:00:00Z"
"""Every evaluation of __main__ in the suite plans as of this instant (see planning/clock.py)."""
STACKS = sorted(p.name.split(".")[1] for p in STACKS_DIR.glob("Pulumi.*.yaml"))
REGION = "ca-central-1"
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@cache
def stack_run(stack: str) -> OfflineRun:
    """The whole program for one stack, evaluated once per test session (about 1 s each)."""
    return run_offline(stack, stack_config(stack))


def with_setting(config: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Set `floodgate:settings.<dotted>` in a stack config (creating mappings on the way)."""
    node = config["floodgate:settings"]
    *path, last = dotted.split(".")
    for key in path:
        node = node.setdefault(key, {})
    node[last] = value
    return config


SLOW_ALB_PCT = 5.0
"""A load balancer scaling 5 % every 5 minutes: prod's election night (3.4x an hour at its
steepest) then outpaces it and the planner reserves LCUs (at AWS's 50 % it reserves none), so
the reservation lever's tests have steps to act on."""


def slow_alb(settings: Settings) -> Settings:
    """`settings` with the load balancer at SLOW_ALB_PCT."""
    lb = settings.load_balancer.model_copy(update={"scaling_pct_per_5_min": SLOW_ALB_PCT})
    return settings.model_copy(update={"load_balancer": lb})


def settings_with(config: dict[str, Any], **changes: Any) -> Settings:
    """Settings from `config` with `section__key=value` changes (dots as double underscores)."""
    for dotted, value in changes.items():
        with_setting(config, dotted.replace("__", "."), value)
    return parse_stack_config(config)


def client(service: str, url: str, region: str = REGION) -> Any:
    """A boto3 client for moto's server at `url`, with the pre-scale job's retry settings."""
    return boto3.client(
        service, region_name=region, endpoint_url=url, config=RETRIES, **FAKE_CREDENTIALS
    )
