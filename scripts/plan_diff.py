"""Compare two offline plans and summarise the difference as Markdown for a pull request.

    python -m scripts.plan --stack prod --diff BASE.json   # the working tree against a plan file
    python -m scripts.plan_diff --stack prod --base main   # the working tree against a git ref

The second form (`make plan-diff BASE=<ref>`) builds the plan at the ref in a temporary git
worktree and the plan of the working tree, both as of one instant (`FLOODGATE_NOW`, so that
event schedules match), then compares them. Each plan runs in its own interpreter with its own
tree on `PYTHONPATH`, so neither can import the other's code.

Resources are matched by URN, or by an alias the new one declares for the old URN: Pulumi
treats the old URN as the same resource and updates it in place; without the alias it deletes
and recreates it (https://www.pulumi.com/docs/iac/concepts/resources/options/aliases/).

A changed input is shown at its nested path (`a.b[2].c`) as before -> after; lists are aligned
element by element, and JSON documents held in strings (IAM policies, dashboards) are compared
inside. Plans hold each secret as a mark (`[secret <digest>]`, scripts/offline_cloud.py) and,
inside a property secret as a whole (the distribution's `origins`), everything but the secret
itself: a value that is secret on either side is shown only as "[secret]", and one whose mark
differs as "[secret, changed]". Exit codes: 0 no change, 1 changes, 2 error.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if not __package__:  # run by path (`python scripts/plan_diff.py`): make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import scripts  # noqa: F401 - without the project's dependencies: its own interpreter

from planning import clock
from scripts import output_dir
from scripts.offline_cloud import ROOT, SECRET, is_secret

SECRET_CHANGED = "[secret, changed]"
"""A secret whose digest differs between the plans: it changed, and neither value is shown."""

# GitHub refuses comments over 65,536 characters; leave room for the workflow's own header.
COMMENT_LIMIT_CHARS = 60_000
# Removing one of these deletes data or a key, not just configuration.
STATEFUL_TYPES = {
    "aws:dynamodb/table:Table": "DynamoDB table",
    "aws:s3/bucket:Bucket": "S3 bucket",
    "aws:secretsmanager/secret:Secret": "secret",
    "aws:cloudwatch/logGroup:LogGroup": "log group",
    "aws:cloudfront/keyValueStore:KeyValueStore": "KeyValueStore",
}
_VALUE_CHARS = 160
_DIFF_LINES = 40  # lines of a text diff shown per changed input
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_INSIDE = " » "  # path step into a JSON document held in a string: `policy » Statement[0]`


class PlanDiffError(ValueError):
    """A plan document that cannot be compared (missing, malformed, another stack)."""


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Absent()
"""The value on the side of a change where the key or list element does not exist."""


@dataclass(frozen=True)
class Change:
    """One input that differs, at a path such as `origins[0].customHeaders`."""

    path: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Resource:
    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChangedResource:
    resource: Resource
    changes: list[Change]


@dataclass(frozen=True)
class Moved:
    """A resource whose URN changed but whose inputs did not: Pulumi replaces it unless the
    code declares an alias for the old URN."""

    before: Resource
    after: Resource


@dataclass(frozen=True)
class PlanDiff:
    stack: str
    added: list[Resource]
    removed: list[Resource]
    moved: list[Moved]
    changed: list[ChangedResource]
    unchanged: int
    renamed: list[Moved]
    """New URN with an alias for the old one: kept by Pulumi, so not a change in itself."""

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.removed or self.moved or self.changed)

    @property
    def removed_stateful(self) -> list[Resource]:
        return [r for r in self.removed if r.type in STATEFUL_TYPES]


def load_plan(path: Path) -> dict[str, Any]:
    """Read a plan document written by `scripts.plan`, checking its shape."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanDiffError(f"{path}: no such plan file") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise PlanDiffError(f"{path}: not a plan document ({exc})") from None
    _check_document(document, str(path))
    return document


def compare(base: dict[str, Any], head: dict[str, Any]) -> PlanDiff:
    """What `head` changes relative to `base`, resource by resource (matched by URN)."""
    _check_document(base, "base plan")
    _check_document(head, "new plan")
    if (base["project"], base["stack"]) != (head["project"], head["stack"]):
        raise PlanDiffError(
            f"the base plan is of {base['project']}/{base['stack']} and the new plan of "
            f"{head['project']}/{head['stack']}; compare plans of the same stack"
        )
    before = {r.urn: r for r in map(_resource, base["resources"])}
    after = {r.urn: r for r in map(_resource, head["resources"])}
    gone = before.keys() - after.keys()
    renamed = [
        Moved(before[old], new)
        for new in (after[u] for u in sorted(after.keys() - before.keys()))
        if (old := next((a for a in new.aliases if a in gone), None))
    ]
    pairs = [(before[u], after[u]) for u in sorted(before.keys() & after.keys())]
    pairs += [(r.before, r.after) for r in renamed]
    kept = {r.before.urn for r in renamed} | {r.after.urn for r in renamed}
    added = [after[u] for u in sorted(after.keys() - before.keys() - kept)]
    removed = [before[u] for u in sorted(before.keys() - after.keys() - kept)]
    moved = _pair_moves(added, removed)
    for move in moved:
        added.remove(move.after)
        removed.remove(move.before)
    changed = [
        ChangedResource(new, changes)
        for old, new in pairs
        if (changes := list(_changes(old.inputs, new.inputs, "")))
    ]
    return PlanDiff(
        stack=head["stack"],
        added=added,
        removed=removed,
        moved=moved,
        changed=changed,
        unchanged=len(pairs) - len(changed),
        renamed=renamed,
    )


def verdict(diff: PlanDiff) -> str:
    """The one line a reviewer reads first."""
    renamed = f", {len(diff.renamed)} renamed under an alias" if diff.renamed else ""
    if not diff.has_changes:
        return f"**No change** to stack `{diff.stack}` ({diff.unchanged} resources{renamed})."
    counts = [
        f"{len(diff.added)} to add",
        f"{len(diff.changed)} to change",
        f"{len(diff.removed)} to remove",
    ]
    if diff.moved:
        counts.append(f"{len(diff.moved)} moved (replaced unless aliased)")
    line = f"**Stack `{diff.stack}`: {', '.join(counts)}** ({diff.unchanged} unchanged{renamed})."
    if diff.removed_stateful:
        kinds = sorted({STATEFUL_TYPES[r.type] for r in diff.removed_stateful})
        line += f" :warning: **Deletes data:** {', '.join(kinds)}."
    return line


def to_markdown(diff: PlanDiff, base_label: str, limit_chars: int = COMMENT_LIMIT_CHARS) -> str:
    """A PR comment: verdict, then removed, moved, changed and added resources.

    Cut at `limit_chars` (GitHub's comment limit is 65,536), saying how much was left out.
    """
    head = [
        verdict(diff),
        "",
        f"Offline plan of the working tree compared with {base_label} "
        "(no credentials; inputs as the engine receives them, secrets masked).",
    ]
    # Most dangerous first, so that a cut comment loses additions rather than deletions.
    blocks: list[list[str]] = []
    if diff.removed:
        blocks.append(["", f"### Removed ({len(diff.removed)})", ""])
        blocks += [
            [f"- {_title(r)}" + (" :warning: holds data" if r.type in STATEFUL_TYPES else "")]
            for r in diff.removed
        ]
    if diff.moved:
        blocks.append(["", f"### Moved ({len(diff.moved)}): new URN, same inputs", ""])
        blocks += [
            [f"- {_title(m.after)}", f"  - was {_code(m.before.urn)}; add an alias to keep it"]
            for m in diff.moved
        ]
    if diff.changed:
        blocks.append(["", f"### Changed ({len(diff.changed)})", ""])
        blocks += [
            [f"- {_title(c.resource)}"] + [line for ch in c.changes for line in _change_lines(ch)]
            for c in diff.changed
        ]
    if diff.added:
        blocks.append(["", f"### Added ({len(diff.added)})", ""])
        blocks += [[f"- {_title(r)}"] for r in diff.added]
    if diff.renamed:
        blocks.append(["", f"### Renamed under an alias ({len(diff.renamed)}): kept", ""])
        blocks += [[f"- {_title(m.after)}", f"  - was {_code(m.before.urn)}"] for m in diff.renamed]
    trailer = 80  # room for the "more resources not shown" line
    lines, used = list(head), sum(len(line) + 1 for line in head) + trailer
    for shown, block in enumerate(blocks):
        size = sum(len(line) + 1 for line in block)
        if used + size > limit_chars:
            left = sum(1 for b in blocks[shown:] if b[0].startswith("- "))
            lines += ["", f"… {left} more resources not shown (comment size limit)."]
            break
        lines += block
        used += size
    return "\n".join(lines) + "\n"


def _check_document(document: Any, label: str) -> None:
    if (
        not isinstance(document, dict)
        or not {"stack", "project", "resources"} <= document.keys()
        or not isinstance(document["resources"], list)
    ):
        raise PlanDiffError(f"{label}: not a plan document (needs stack, project, resources)")
    for index, resource in enumerate(document["resources"]):
        if not isinstance(resource, dict) or not {"urn", "type", "name", "inputs"} <= set(resource):
            raise PlanDiffError(
                f"{label}: resources[{index}] needs urn, type, name and inputs (got {resource!r})"
            )


def _resource(raw: dict[str, Any]) -> Resource:
    aliases = tuple(raw.get("aliases", ()))  # plans written before aliases were recorded
    return Resource(raw["urn"], raw["type"], raw["name"], raw["inputs"], aliases)


def _pair_moves(added: list[Resource], removed: list[Resource]) -> list[Moved]:
    """Removed and added resources of one type with identical inputs: a rename or re-parent."""
    moves: list[Moved] = []
    unpaired = list(added)
    for old in removed:
        match = next(
            (new for new in unpaired if new.type == old.type and new.inputs == old.inputs), None
        )
        if match is not None:
            unpaired.remove(match)
            moves.append(Moved(old, match))
    return moves


def _changes(before: Any, after: Any, path: str) -> Iterator[Change]:
    if before == after:
        return
    if is_secret(before) or is_secret(after):
        # Never show a value next to its secret counterpart: a value that became secret may be
        # the very leak being fixed. Two different marks: the secret itself changed.
        changed = is_secret(before) and is_secret(after)
        yield Change(path, _mask(before), SECRET_CHANGED if changed else _mask(after))
    elif isinstance(before, dict) and isinstance(after, dict):
        for key in sorted(before.keys() | after.keys()):
            yield from _changes(before.get(key, ABSENT), after.get(key, ABSENT), _join(path, key))
    elif isinstance(before, list) and isinstance(after, list):
        yield from _list_changes(before, after, path)
    elif (embedded := _embedded_json(before, after)) is not None:
        yield from _changes(*embedded, f"{path}{_INSIDE}")
    else:
        yield Change(path, before, after)


def _list_changes(before: list[Any], after: list[Any], path: str) -> Iterator[Change]:
    """Align the lists (so one inserted element is one change, not a shifted tail)."""
    keys_before = [json.dumps(v, sort_keys=True) for v in before]
    keys_after = [json.dumps(v, sort_keys=True) for v in after]
    matcher = difflib.SequenceMatcher(a=keys_before, b=keys_after, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        paired = min(i2 - i1, j2 - j1) if op == "replace" else 0
        for k in range(paired):
            yield from _changes(before[i1 + k], after[j1 + k], f"{path}[{j1 + k}]")
        for i in range(i1 + paired, i2):
            yield Change(f"{path}[{i}]", before[i], ABSENT)
        for j in range(j1 + paired, j2):
            yield Change(f"{path}[{j}]", ABSENT, after[j])


def _embedded_json(before: Any, after: Any) -> tuple[Any, Any] | None:
    """Both sides are JSON objects or arrays held in strings (policies, dashboard bodies)."""
    if not (isinstance(before, str) and isinstance(after, str)):
        return None
    try:
        parsed = json.loads(before), json.loads(after)
    except json.JSONDecodeError:
        return None
    return parsed if all(isinstance(p, dict | list) for p in parsed) else None


def _mask(value: Any) -> Any:
    return value if value is ABSENT else SECRET


def _join(path: str, key: str) -> str:
    if not _IDENTIFIER.match(key):
        return f"{path}[{json.dumps(key)}]"
    return f"{path}.{key}" if path and not path.endswith(_INSIDE) else f"{path}{key}"


def _change_lines(change: Change) -> list[str]:
    """`path`: before → after; code and other multi-line text as a line diff instead."""
    before, after = change.before, change.after
    if not (isinstance(before, str) and isinstance(after, str) and "\n" in before + after):
        return [f"  - {_code(change.path)}: {_value(before)} → {_value(after)}"]
    lines = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=1))[
        2:
    ]  # drop the ---/+++ file header
    shown = lines[:_DIFF_LINES] + (
        [f"... {len(lines) - _DIFF_LINES} more lines"] if len(lines) > _DIFF_LINES else []
    )
    fence = code_fence(before + after)
    return [
        f"  - {_code(change.path)}: text, {len(before.splitlines())} → "
        f"{len(after.splitlines())} lines",
        "",
        f"    {fence}diff",
        *(f"    {line}" for line in shown),
        f"    {fence}",
    ]


def code_fence(text: str) -> str:
    """A fence for a Markdown code block that `text` cannot close: longer than any backtick run."""
    return "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)


def _title(resource: Resource) -> str:
    return f"{_code(resource.type)} {_code(resource.name)}"


def _value(value: Any) -> str:
    if value is ABSENT:
        return "*(absent)*"
    if value in (SECRET, SECRET_CHANGED):
        return _code(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # the engine carries every number as a double: 120.0 means 120
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if len(text) > _VALUE_CHARS:
        text = text[: _VALUE_CHARS - 1] + "…"
    return _code(text)


def _code(text: str) -> str:
    """A Markdown code span that survives backticks and newlines inside `text`."""
    text = text.replace("\n", " ")
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


# --- the plan at a git ref against the working tree -------------------------------------------


def plan_at(tree: Path, stack: str, out: Path, now: str) -> Path:
    """Build `plan-<stack>.json` for the code in `tree`, in its own interpreter."""
    if not (tree / "scripts" / "plan.py").is_file():
        raise PlanDiffError(f"{tree} has no offline plan (scripts/plan.py)")
    env = {**os.environ, "PYTHONPATH": str(tree), "FLOODGATE_NOW": now}
    result = subprocess.run(
        [sys.executable, "-m", "scripts.plan", "--stack", stack, "--out", str(out)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise PlanDiffError(
            f"planning stack {stack!r} in {tree} failed (exit {result.returncode}):\n"
            + (result.stderr.strip() or result.stdout.strip())
        )
    return out / f"plan-{stack}.json"


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise PlanDiffError(f"git {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


def diff_against_ref(repo: Path, ref: str, stack: str, out: Path) -> tuple[PlanDiff, str]:
    """Plan `ref` (in a temporary worktree) and the working tree; return the diff and a label."""
    try:
        commit = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except PlanDiffError:
        raise PlanDiffError(
            f"unknown git ref {ref!r} in {repo} (in CI, check out with fetch-depth: 0)"
        ) from None
    now = clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    with tempfile.TemporaryDirectory(prefix="floodgate-base-") as tmp:
        worktree = Path(tmp) / "tree"
        _git(repo, "worktree", "add", "--detach", "--quiet", str(worktree), commit)
        try:
            # Progress on stderr: each plan takes 10-15 s; stdout is the Markdown summary.
            print(f"planning {stack} at {ref} ({commit[:10]})...", file=sys.stderr, flush=True)
            base_path = plan_at(worktree, stack, out / "base", now)
        finally:
            _git(repo, "worktree", "remove", "--force", str(worktree))
    print(f"planning {stack} in the working tree...", file=sys.stderr, flush=True)
    head_path = plan_at(repo, stack, out, now)
    diff = compare(load_plan(base_path), load_plan(head_path))
    return diff, f"{_code(ref)} ({commit[:10]}), both as of {now}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--stack", default="prod", help="stack to plan (default: prod)")
    parser.add_argument("--base", required=True, help="git ref to compare with, e.g. origin/main")
    parser.add_argument("--repo", type=Path, default=ROOT, help="git checkout (default: here)")
    parser.add_argument(
        "--out",
        type=output_dir,
        default=None,
        help="where plans and the summary go (default: build/)",
    )
    args = parser.parse_args(argv)
    out: Path = args.out or args.repo / "build"
    try:
        diff, label = diff_against_ref(args.repo.resolve(), args.base, args.stack, out)
    except (PlanDiffError, clock.ClockError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = to_markdown(diff, label)
    (out / f"plan-diff-{args.stack}.md").write_text(summary, encoding="utf-8")
    print(summary, end="")
    return 1 if diff.has_changes else 0


if __name__ == "__main__":
    sys.exit(main())
