"""Every operator script runs by path as well as with -m (issue 15: `python scripts/plan.py`
crashed with ModuleNotFoundError), from any working directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ["plan", "plan_diff", "policy", "preflight", "preview", "prescale", "rehearse"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_script_runs_by_path_from_anywhere(script: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / f"{script}.py"), "--help"],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
