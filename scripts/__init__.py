"""Floodgate's command lines (`python -m scripts.<name>` or `python scripts/<name>.py`).

Imported before anything else a script needs (by `-m`, the package first; by path, each
script's bootstrap imports it): run by an interpreter without the project's dependencies, the
same command runs again with the project's own (`.venv`, which `make install` builds), or ends
with one line saying how to get it, exit 2. Never a traceback from a missing module.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

NEEDED = ("pulumi", "pydantic", "yaml", "icalendar", "boto3")
"""Modules every script imports, directly or through planning/ (requirements.lock pins them)."""
VENV = Path(__file__).resolve().parent.parent / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
_AGAIN = "FLOODGATE_IN_VENV"
"""Set on the re-run: a project interpreter that still lacks a module is reported, not re-run."""


def missing_modules() -> list[str]:
    """NEEDED modules this interpreter cannot import."""
    return [name for name in NEEDED if importlib.util.find_spec(name) is None]


def ensure_dependencies() -> None:
    """Re-run this command with the project's interpreter, or exit 2 with how to get one."""
    missing = missing_modules()
    if not missing:
        return
    inside = Path(sys.prefix).resolve() == VENV.resolve()  # a venv's python links to the base
    if VENV_PYTHON.is_file() and not inside and not os.environ.get(_AGAIN):
        os.environ[_AGAIN] = "1"
        os.execv(VENV_PYTHON, [str(VENV_PYTHON), *sys.orig_argv[1:]])
    print(
        f"error: {sys.executable or 'python'} lacks {', '.join(missing)}: run `make install` "
        "(it builds .venv with the pinned dependencies), then this command again, or use its "
        "make target",
        file=sys.stderr,
    )
    sys.exit(2)


def output_dir(text: str) -> Path:
    """An `--out` directory (argparse `type=`): absent (the script makes it) or a directory,
    and writable where it is or would be made; else argparse refuses it, with the reason (exit
    2). Nothing is made here: a refused run leaves nothing behind."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a directory")
    nearest = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not nearest.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: {nearest} is a file, not a directory")
    if not os.access(nearest, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text!r}: {nearest} is not writable")
    return path


ensure_dependencies()
