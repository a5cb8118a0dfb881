"""Shared fixtures: the offline cloud (Pulumi mocks), stack files, valid settings and moto.
Helpers that tests import live in tests/helpers.py."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterator
from typing import Any

import pulumi
import pytest
import requests

from planning.settings import Settings, load_stack_settings
from scripts.offline_cloud import OfflineCloud, OfflineRun, run_offline, stack_config
from tests.helpers import TEST_NOW
from tests.moto_server import moto_thread

os.environ["FLOODGATE_NOW"] = TEST_NOW
# Offline: build artefacts (the awscrt layer) are referenced, never read.
os.environ["FLOODGATE_OFFLINE"] = "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `long` first: pytest-xdist hands them out before the short ones, so the
    short ones fill the other worker instead of one long test running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


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
