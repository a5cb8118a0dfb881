"""Shared fixtures: the offline cloud (Pulumi mocks), stack files and valid settings."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

import pulumi
import pytest
import requests

from planning.settings import STACKS_DIR, Settings, load_stack_settings, parse_stack_config
from scripts.offline_cloud import OfflineCloud, OfflineRun, run_offline, stack_config
from tests.moto_server import moto_thread

# Every evaluation of __main__ in the suite plans as of this instant (see planning/clock.py).
TEST_NOW = "2028-10-01T00:00:00Z"
os.environ["FLOODGATE_NOW"] = TEST_NOW
# Offline: build artefacts (the awscrt layer) are referenced, never read.
os.environ["FLOODGATE_OFFLINE"] = "1"

STACKS = sorted(p.name.split(".")[1] for p in STACKS_DIR.glob("Pulumi.*.yaml"))


@cache
def stack_run(stack: str) -> OfflineRun:
    """The whole program for one stack, evaluated once per test session (about 1 s each)."""
    return run_offline(stack, stack_config(stack))


@pytest.fixture
def evaluate() -> Callable[[Callable[[], object]], OfflineRun]:
    """Evaluate one component alone under the offline cloud and return what it registered."""

    def run(program: Callable[[], object]) -> OfflineRun:
        return run_offline("test", {}, program)

    return run


@pytest.fixture
def pulumi_mocks() -> None:
    """Mocks for tests that assert on Outputs inside @pulumi.runtime.test."""
    pulumi.runtime.set_mocks(OfflineCloud(), project="floodgate", stack="test", preview=True)


@pytest.fixture
def prod_config() -> dict[str, Any]:
    """A deep copy of prod's stack config, free to break in a test."""
    return copy.deepcopy(stack_config("prod"))


@pytest.fixture
def prod() -> Settings:
    return load_stack_settings("prod")


@pytest.fixture
def dev() -> Settings:
    return load_stack_settings("dev")


def with_setting(config: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Set `floodgate:settings.<dotted>` in a stack config (creating mappings on the way)."""
    node = config["floodgate:settings"]
    *path, last = dotted.split(".")
    for key in path:
        node = node.setdefault(key, {})
    node[last] = value
    return config


def settings_with(config: dict[str, Any], **changes: Any) -> Settings:
    for dotted, value in changes.items():
        with_setting(config, dotted.replace("__", "."), value)
    return parse_stack_config(config)


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto's server on 127.0.0.1, one per test session (tests that call AWS use `aws`)."""
    with moto_thread() as url:
        yield url


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A clean moto for each test; no real credentials can leak into the calls."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    requests.post(f"{moto_url}/moto-api/reset", timeout=10)
    yield moto_url
