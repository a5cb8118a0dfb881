"""Every refusal docs/scripts.md promises, run as written: exit 2, and the last line of
standard error says what the row says (argparse's usage line may come before it), never a
traceback. The document is the table; a row it adds is a test."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts import (
    layer,
    plan,
    plan_diff,
    policy,
    preflight,
    prescale,
    preview,
    redrive,
    rehearse,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs/scripts.md"
ENTRIES: dict[str, Callable[[list[str]], int]] = {
    "plan": plan.main,
    "policy": policy.main,
    "rehearse": rehearse.main,
    "prescale": prescale.run,
    "preflight": preflight.main,
    "plan_diff": plan_diff.main,
    "preview": preview.main,
    "layer": layer.main,
    "redrive": redrive.main,
}
"""Each operator script's entry point. settings_doc takes no input but `--check`."""
_CELL = re.compile(r"`(.+)`")


def documented() -> list[tuple[str, str, str]]:
    """(script, arguments, what it says) for each table row with an example."""
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] in ("script", "---"):
            continue
        refused, says = (_CELL.fullmatch(cells[3]), _CELL.fullmatch(cells[4]))
        assert refused and says, f"docs/scripts.md: a row without a `refused` or `says`: {line}"
        rows.append((cells[0], refused[1], says[1]))
    return rows


ROWS = documented()


def test_the_table_covers_every_script() -> None:
    assert {script for script, _, _ in ROWS} == set(ENTRIES)
    shipped = {p.stem for p in (ROOT / "scripts").glob("*.py")}
    assert set(ENTRIES) <= shipped and shipped - set(ENTRIES) == {
        "__init__", "offline_cloud", "settings_doc", "text_table",
    }  # fmt: skip


@pytest.mark.parametrize(("script", "refused", "says"), ROWS, ids=[r[1][:60] for r in ROWS])
def test_a_documented_refusal_holds(
    script: str, refused: str, says: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(ROOT)
    argv = shlex.split(refused)
    while argv and re.fullmatch(r"[A-Z_]+=.*", argv[0]):
        name, value = argv.pop(0).split("=", 1)
        monkeypatch.setenv(name, value)
    try:
        code = ENTRIES[script](argv)
    except SystemExit as exc:  # argparse's refusals
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert says in last, last


def test_every_command_s_output_fits_100_columns(tmp_path, capsys, monkeypatch) -> None:
    """make plan (with events inside the horizon and without), make policy, a rehearsal of two
    nights, the pre-scale job's table: no line wider than text_table.WIDTH."""
    from scripts.text_table import WIDTH

    outputs = []
    monkeypatch.chdir(tmp_path)  # `--out out`: the paths it prints are short, as in build/
    for when in ("2028-10-25T00:00:00Z", "2026-12-04T00:00:00Z"):
        monkeypatch.setenv("FLOODGATE_NOW", when)
        plan.main(["--stack", "prod", "--out", "out"])
        outputs.append(capsys.readouterr().out)
    policy.main(["--stack", "pr"])
    outputs.append(capsys.readouterr().out)
    rehearse.main(["--stack", "prod", "--scenario", "flash-crowd", "--no-charts", "--out", "out"])
    outputs.append(capsys.readouterr().out)
    wide = [line for out in outputs for line in out.splitlines() if len(line) > WIDTH]
    assert wide == []
