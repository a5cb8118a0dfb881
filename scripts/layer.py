"""Build the waiting room's Lambda layer (awscrt, for SigV4A) reproducibly.

Usage: python -m scripts.layer [--target build/layers/awscrt]

Installs functions/admission/layer.txt as aarch64 CPython 3.12 wheels into <target>/python,
the layout Lambda layers use. `--no-compile` matters: pip's .pyc files embed the time of
extraction, so every build would be a new layer version (and a new `pulumi up` diff). Prints
what it built, where, its size, the content hash of the built tree (two builds of the same pins
print the same hash) and what uses it next.
Exit codes: 0 built, 2 pip failed.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "functions/admission/layer.txt"
TARGET = ROOT / "build/layers/awscrt"
PIP_FLAGS = (
    "--quiet", "--disable-pip-version-check", "--no-deps", "--no-compile",
    "--platform", "manylinux2014_aarch64", "--implementation", "cp", "--python-version", "3.12",
    "--only-binary=:all:",
)  # fmt: skip
"""The arm64 python3.12 Lambda runtime, binary wheels only."""


def tree_hash(root: Path) -> str:
    """SHA-256 over every file's relative path and bytes, in path order (mtimes ignored, as a
    layer's content is what Lambda and Pulumi's archive hash see)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build(target: Path, requirements: Path | None = None, extra: tuple[str, ...] = ()) -> str:
    """A fresh layer in `target` (replaced whole) from `requirements` (default layer.txt);
    returns its content hash."""
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            *PIP_FLAGS,
            *extra,
            "--target",
            str(target / "python"),
            "-r",
            str(requirements or REQUIREMENTS),
        ],
        check=True,
    )
    return tree_hash(target)


def pins(requirements: Path) -> list[str]:
    """The requirement lines of `requirements` (comments and blank lines left out)."""
    lines = requirements.read_text(encoding="utf-8").splitlines()
    stripped = (line.split("#", 1)[0].strip() for line in lines)
    return [line for line in stripped if line]


def report(target: Path, requirements: Path, digest: str) -> list[str]:
    """What was built, where, and what to do with it."""
    files = [p for p in target.rglob("*") if p.is_file()]
    size_mb = sum(p.stat().st_size for p in files) / 1e6
    shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
    return [
        f"built the waiting room's Lambda layer: {', '.join(pins(requirements))} "
        "(aarch64 wheels, python3.12)",
        f"  in {shown}/python: {len(files)} files, {size_mb:.1f} MB unzipped "
        "(Lambda allows 250 MB with the function)",
        f"  sha256 {digest} (same pins, same bytes)",
        "  next: pulumi preview / pulumi up upload it (components/admission.py reads",
        "  build/layers/awscrt); a new hash publishes a new layer version",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--target", type=Path, default=TARGET, help="layer directory")
    args = parser.parse_args(argv)
    if args.target.exists() and not args.target.is_dir():
        print(f"error: --target {args.target}: is a file, not a directory", file=sys.stderr)
        return 2
    print(f"building {', '.join(pins(REQUIREMENTS))} with pip (about a minute)", file=sys.stderr)
    try:
        digest = build(args.target)
    except subprocess.CalledProcessError as exc:
        print(f"error: pip failed ({exc.returncode}) building {args.target}", file=sys.stderr)
        return 2
    print("\n".join(report(args.target, REQUIREMENTS, digest)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
