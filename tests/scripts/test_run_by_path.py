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
    done = _run(sys.executable, str(ROOT / "scripts" / f"{script}.py"), "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


def _run(python: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, *args],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    )


@pytest.mark.parametrize("script", ["prescale", "rehearse"])
def test_outside_the_venv_a_script_runs_with_the_project_s_interpreter(
    script: str, tmp_path: Path
) -> None:
    """`python3 scripts/prescale.py --help`, as the README writes it, with the interpreter the
    venv was made from (which has none of the pinned packages): the same command runs again
    with .venv's (scripts/__init__.py)."""
    base = str(Path(sys.base_prefix) / "bin" / "python3")
    done = _run(base, str(ROOT / "scripts" / f"{script}.py"), "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


@pytest.mark.parametrize("how", ["path", "module"])
def test_without_its_dependencies_a_script_ends_with_one_clear_line_and_exit_2(
    how: str, tmp_path: Path
) -> None:
    """-S: no site-packages at all, so not even the project's interpreter has the modules: one
    line naming what is missing and what to run, exit 2, no traceback, no loop."""
    args = [str(ROOT / "scripts/plan.py")] if how == "path" else ["-m", "scripts.plan"]
    where = ROOT if how == "module" else tmp_path  # -m finds the package from the root
    done = _run(sys.executable, "-S", *args, "--stack", "prod", cwd=where)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: ") and "lacks pulumi" in line and "make install" in line
    assert done.stdout == ""
