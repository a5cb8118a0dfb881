"""The Lambda layer builds reproducibly: same pins, same bytes, so no spurious layer version.

Offline: a small pure-Python wheel on disk stands in for awscrt (the network is not reached);
the install runs the layer's own pip flags (scripts/layer.py)."""

from __future__ import annotations

import base64
import hashlib
import time
import zipfile
from pathlib import Path

import pytest

from scripts import layer


def make_wheel(directory: Path) -> Path:
    """A minimal py3-none-any wheel with one module, per the wheel spec (PEP 427)."""
    files = {
        "tinycrt/__init__.py": b"def sign(data):\n    return data[::-1]\n",
        "tinycrt-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinycrt\nVersion: 1.0\n",
        "tinycrt-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = (
        "".join(
            f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
            for name, data in files.items()
        )
        + "tinycrt-1.0.dist-info/RECORD,,\n"
    )
    path = directory / "tinycrt-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr("tinycrt-1.0.dist-info/RECORD", record)
    return path


@pytest.fixture
def local_index(tmp_path: Path) -> tuple[Path, tuple[str, ...]]:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels)
    requirements = tmp_path / "layer.txt"
    requirements.write_text("tinycrt==1.0\n", encoding="utf-8")
    return requirements, ("--no-index", "--find-links", str(wheels))


def test_two_builds_of_the_same_pins_are_identical(tmp_path, local_index) -> None:
    requirements, offline = local_index
    first = layer.build(tmp_path / "a", requirements, offline)
    time.sleep(1.1)  # a .pyc would record a different extraction time
    second = layer.build(tmp_path / "b", requirements, offline)
    assert first == second
    assert (tmp_path / "a/python/tinycrt/__init__.py").is_file(), "Lambda's python/ layout"
    assert not list((tmp_path / "a").rglob("*.pyc"))


def test_the_hash_sees_content_changes(tmp_path) -> None:
    (tmp_path / "m.py").write_text("a = 1\n", encoding="utf-8")
    before = layer.tree_hash(tmp_path)
    (tmp_path / "m.py").write_text("a = 2\n", encoding="utf-8")
    assert layer.tree_hash(tmp_path) != before


def test_pip_failure_is_exit_2_naming_the_target(tmp_path, monkeypatch, capsys) -> None:
    missing = tmp_path / "layer.txt"
    missing.write_text("no-such-package-floodgate==9.9\n", encoding="utf-8")
    monkeypatch.setattr(layer, "REQUIREMENTS", missing)
    monkeypatch.setattr(layer, "PIP_FLAGS", (*layer.PIP_FLAGS, "--no-index"))
    assert layer.main(["--target", str(tmp_path / "out")]) == 2
    assert "pip failed" in capsys.readouterr().err


def test_the_report_says_what_was_built_where_and_what_next(tmp_path, local_index) -> None:
    requirements, offline = local_index
    digest = layer.build(tmp_path / "a", requirements, offline)
    lines = layer.report(tmp_path / "a", requirements, digest)
    assert lines[0].startswith("built the waiting room's Lambda layer: tinycrt==1.0 (aarch64")
    assert f"in {tmp_path / 'a'}/python: " in lines[1] and " MB unzipped" in lines[1]
    assert digest in lines[2]
    assert "pulumi up" in lines[3] and "build/layers/awscrt" in lines[4]
    assert all(len(line) <= 100 for line in lines[:1] + lines[2:])  # [1]: the target's path
    assert layer.pins(layer.REQUIREMENTS) == ["awscrt==0.38.1"]
