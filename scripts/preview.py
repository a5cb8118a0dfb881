"""Real previews with the Pulumi Automation API: ephemeral pr-<N> stacks and a preview of prod.

    python -m scripts.preview up --pr 42 [--ttl 72h]      # create or update stack pr-42
    python -m scripts.preview preview --stack prod        # pulumi preview --refresh, as Markdown
    python -m scripts.preview destroy --pr 42             # destroy pr-42 and remove the stack
    python -m scripts.preview cleanup --older-than 72h    # destroy expired PR stacks [--dry-run]

Needs what `pulumi up` needs: the Pulumi CLI (3.x) on PATH, AWS credentials and a Pulumi
backend you are logged in to. Each is checked before anything else, and a missing one is named
with how to get it. Settings are validated before any stack is touched.

A pr-<N> stack takes its config from stacks/Pulumi.pr.yaml (the Automation API ignores
`stackConfigDir`, so the config is copied with set_all_config), with the pull request's tag
and its own origin host name, `pr-<N>.<template origin_domain_name>` (the regional certificate
must cover `*.<template origin_domain_name>`). It is tagged `floodgate:pr` and
`floodgate:expires`; cleanup destroys PR stacks past that expiry, or, for a stack without the
tag, last updated longer ago than --older-than. Only stacks named pr-<digits> are ever
destroyed. Progress goes to stderr; results (outputs as JSON, the preview as Markdown) to
stdout. Exit codes: 0 done (preview: no changes), 1 preview found changes, 2 error.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

if not __package__:  # run by path (`python scripts/preview.py`): make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import scripts  # noqa: F401 - without the project's dependencies: its own interpreter

from planning import clock
from planning.settings import SETTINGS_KEY, SettingsError, load_stack_settings, parse_stack_config
from scripts.offline_cloud import ROOT, SECRET, stack_config
from scripts.plan_diff import COMMENT_LIMIT_CHARS, code_fence

POLICY_PACKS = [str(ROOT / "policies")]
"""Every real preview and update runs the policy pack: a failing rule stops it."""

TEMPLATE_STACK = "pr"
PR_TAG = "floodgate:pr"
EXPIRES_TAG = "floodgate:expires"
_PR_STACK = re.compile(r"^pr-(?P<number>[1-9][0-9]{0,8})$")
_DURATION = re.compile(r"^(?P<count>[1-9][0-9]*)(?P<unit>[mhd])$")
_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
MIN_TTL, MAX_TTL = timedelta(hours=1), timedelta(days=90)
# Engine operations that leave a resource as it is.
_NO_CHANGE_OPS = {"same", "read", "refresh"}

OnOutput = Callable[[str], object]


class PreviewError(RuntimeError):
    """Something the command cannot go on without; the message says what and how to fix it."""


class OutputValueLike(Protocol):
    value: Any
    secret: bool


class UpResultLike(Protocol):
    @property
    def outputs(self) -> Mapping[str, OutputValueLike]: ...


class PreviewResultLike(Protocol):
    @property
    def stdout(self) -> str: ...
    @property
    def change_summary(self) -> Mapping[Any, int]: ...


class StackSummaryLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def last_update(self) -> datetime | None: ...
    @property
    def update_in_progress(self) -> bool | None: ...


class PreviewStack(Protocol):
    """The part of `pulumi.automation.Stack` the commands use."""

    def up(self, *, on_output: OnOutput, policy_packs: list[str]) -> UpResultLike: ...
    def preview(
        self, *, refresh: bool, diff: bool, on_output: OnOutput, policy_packs: list[str]
    ) -> PreviewResultLike: ...
    def destroy(self, *, on_output: OnOutput) -> object: ...


class Backend(Protocol):
    """The part of `pulumi.automation.LocalWorkspace` the commands use (tests pass a fake)."""

    def select(self, stack: str, *, create: bool) -> PreviewStack:
        """The stack; raises StackNotFoundError when it does not exist and `create` is false."""
        ...

    def list_stacks(self) -> Sequence[StackSummaryLike]: ...
    def set_all_config(self, stack: str, config: Mapping[str, str]) -> None: ...
    def set_tag(self, stack: str, key: str, value: str) -> None: ...
    def list_tags(self, stack: str) -> Mapping[str, str]: ...
    def remove_stack(self, stack: str) -> None: ...


class StackNotFoundError(LookupError):
    """The named stack does not exist in the backend."""


# --- the commands ------------------------------------------------------------------------------


def pr_stack_name(pr: int) -> str:
    return f"pr-{pr}"


def pr_stack_config(pr: int) -> dict[str, str]:
    """The template's config for pull request `pr`, validated, as set_all_config takes it."""
    config = copy.deepcopy(stack_config(TEMPLATE_STACK))
    settings = config[SETTINGS_KEY]
    lb = settings["load_balancer"]
    lb["origin_domain_name"] = f"{pr_stack_name(pr)}.{lb['origin_domain_name']}"
    settings["tags"] = {**settings.get("tags", {}), "PullRequest": str(pr)}
    parse_stack_config(config)  # raises SettingsError naming the key
    # Structured values travel as JSON, as the CLI stores them; pulumi.Config().get_object
    # reads them back.
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}


def up(
    backend: Backend,
    pr: int,
    config: Mapping[str, str],
    ttl: timedelta,
    now: datetime,
    on_output: OnOutput,
) -> dict[str, Any]:
    """Create or update stack pr-<pr> with `config` (from pr_stack_config); returns its outputs,
    secrets masked."""
    name = pr_stack_name(pr)
    stack = backend.select(name, create=True)
    backend.set_all_config(name, config)
    backend.set_tag(name, PR_TAG, str(pr))
    backend.set_tag(name, EXPIRES_TAG, _timestamp(now + ttl))
    result = stack.up(on_output=on_output, policy_packs=POLICY_PACKS)
    return {k: SECRET if v.secret else v.value for k, v in sorted(result.outputs.items())}


def preview(backend: Backend, stack_name: str, on_output: OnOutput) -> tuple[str, bool]:
    """`pulumi preview --refresh --diff` of an existing stack: Markdown, and whether it changes."""
    try:
        stack = backend.select(stack_name, create=False)
    except StackNotFoundError:
        raise PreviewError(
            f"stack {stack_name!r} does not exist in this backend; create it with "
            f"`pulumi stack init {stack_name}` (see README: Deploying with pulumi up)"
        ) from None
    result = stack.preview(refresh=True, diff=True, on_output=on_output, policy_packs=POLICY_PACKS)
    return preview_markdown(stack_name, result)


def preview_markdown(stack_name: str, result: PreviewResultLike) -> tuple[str, bool]:
    counts = {str(getattr(op, "value", op)): n for op, n in result.change_summary.items()}
    changes = {op: n for op, n in counts.items() if op not in _NO_CHANGE_OPS and n}
    if changes:
        listed = ", ".join(f"{n} to {op}" for op, n in sorted(changes.items()))
        head = f"**`pulumi preview` of `{stack_name}`: {listed}** ({counts.get('same', 0)} same)."
    else:
        head = f"**`pulumi preview` of `{stack_name}`: no changes** ({counts.get('same', 0)} same)."
    room = COMMENT_LIMIT_CHARS - len(head) - 200
    output = result.stdout if len(result.stdout) <= room else result.stdout[-room:]
    fence = code_fence(output)
    body = [head, "", "<details><summary>Preview output</summary>", "", f"{fence}text"]
    body += [output.rstrip("\n"), fence, "", "</details>"]
    return "\n".join(body) + "\n", bool(changes)


def destroy(backend: Backend, pr: int, on_output: OnOutput) -> bool:
    """Destroy stack pr-<pr> and remove it; False when there was no such stack."""
    name = pr_stack_name(pr)
    try:
        stack = backend.select(name, create=False)
    except StackNotFoundError:
        return False
    stack.destroy(on_output=on_output)
    backend.remove_stack(name)
    return True


@dataclass(frozen=True)
class Expired:
    stack: str
    reason: str


def expired_pr_stacks(backend: Backend, older_than: timedelta, now: datetime) -> list[Expired]:
    """PR stacks past their `floodgate:expires` tag or, untagged, idle for `older_than`.

    Stacks not named pr-<digits> are never candidates; stacks being updated are left alone.
    """
    found: list[Expired] = []
    for summary in backend.list_stacks():
        name = summary.name.rsplit("/", 1)[-1]  # Pulumi Cloud may qualify it: org/project/pr-1
        if not _PR_STACK.match(name) or summary.update_in_progress:
            continue
        expires = _parse_timestamp(backend.list_tags(name).get(EXPIRES_TAG, ""))
        if expires is not None:
            if expires <= now:
                found.append(Expired(name, f"expired at {_timestamp(expires)}"))
        elif summary.last_update is not None and summary.last_update <= now - older_than:
            found.append(Expired(name, f"last updated {_timestamp(summary.last_update)}"))
    return found


def cleanup(
    backend: Backend, older_than: timedelta, now: datetime, dry_run: bool, on_output: OnOutput
) -> tuple[list[Expired], list[str]]:
    """Destroy expired PR stacks, one failure not stopping the rest: (expired, failures)."""
    expired = expired_pr_stacks(backend, older_than, now)
    failures: list[str] = []
    for item in expired:
        print(
            f"{'would destroy' if dry_run else 'destroying'} {item.stack}: {item.reason}",
            file=sys.stderr,
        )
        if dry_run:
            continue
        number = int(item.stack.removeprefix("pr-"))
        try:
            destroy(backend, number, on_output)
        except Exception as exc:  # report it and go on with the next stack
            failures.append(f"{item.stack}: {exc}")
    return expired, failures


# --- the real backend --------------------------------------------------------------------------


class PulumiBackend:
    """`Backend` over `pulumi.automation.LocalWorkspace` in the project directory."""

    def __init__(self, workspace: Any) -> None:
        self.workspace = workspace

    @classmethod
    def connect(cls, work_dir: Path = ROOT, secrets_provider: str | None = None) -> PulumiBackend:
        """Check the CLI, AWS credentials and the backend login, in that order, then connect."""
        if shutil.which("pulumi") is None:
            raise PreviewError(
                "the Pulumi CLI is not on PATH: install it (https://www.pulumi.com/docs/install/; "
                "in GitHub Actions, pulumi/actions@v6) and run this again"
            )
        import boto3  # only here: the commands' logic needs neither boto3 nor the CLI
        from pulumi import automation as auto

        if boto3.Session().get_credentials() is None:
            raise PreviewError(
                "no AWS credentials: run `aws sso login --profile <profile>` and export "
                "AWS_PROFILE, or in CI assume the preview role with "
                "aws-actions/configure-aws-credentials (OIDC)"
            )
        workspace = auto.LocalWorkspace(work_dir=str(work_dir), secrets_provider=secrets_provider)
        try:
            workspace.who_am_i()
        except auto.CommandError as exc:
            raise PreviewError(
                "not logged in to a Pulumi backend: set PULUMI_ACCESS_TOKEN (Pulumi Cloud) or run "
                f"`pulumi login s3://<state-bucket>` (the CLI said: {_cli_reason(exc)})"
            ) from None
        return cls(workspace)

    def select(self, stack: str, *, create: bool) -> PreviewStack:
        from pulumi import automation as auto

        if create:
            return auto.Stack.create_or_select(stack, self.workspace)
        try:
            return auto.Stack.select(stack, self.workspace)
        except auto.StackNotFoundError:
            raise StackNotFoundError(stack) from None

    def list_stacks(self) -> Sequence[StackSummaryLike]:
        return self.workspace.list_stacks()

    def set_all_config(self, stack: str, config: Mapping[str, str]) -> None:
        from pulumi import automation as auto

        values = {key: auto.ConfigValue(value=value) for key, value in config.items()}
        self.workspace.set_all_config(stack, values)

    def set_tag(self, stack: str, key: str, value: str) -> None:
        self.workspace.set_tag(stack, key, value)

    def list_tags(self, stack: str) -> Mapping[str, str]:
        return self.workspace.list_tags(stack)

    def remove_stack(self, stack: str) -> None:
        self.workspace.remove_stack(stack)


# --- command line ------------------------------------------------------------------------------


def parse_duration(text: str) -> timedelta:
    """`90m`, `72h`, `3d`: between 1 hour and 90 days."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r}: use a whole number of m, h or d, e.g. 72h")
    value = int(match["count"]) * _UNITS[match["unit"]]
    if not MIN_TTL <= value <= MAX_TTL:
        raise argparse.ArgumentTypeError(f"{text!r}: must be between 1h and 90d")
    return value


def parse_pr(text: str) -> int:
    if not _PR_STACK.match(f"pr-{text}"):
        raise argparse.ArgumentTypeError(f"{text!r}: a pull request number such as 42")
    return int(text)


def main(argv: Sequence[str] | None = None, backend: Backend | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Exit codes: 0 done (preview: no changes), 1 preview found changes, 2 error.",
    )
    parser.add_argument(
        "--secrets-provider",
        help="for new stacks on a self-managed backend, e.g. awskms://alias/floodgate-state",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    p_up = commands.add_parser("up", help="create or update stack pr-<N> and print its outputs")
    p_up.add_argument("--pr", type=parse_pr, required=True)
    p_up.add_argument(
        "--ttl",
        type=parse_duration,
        default=parse_duration("72h"),
        help="expiry written to the stack's floodgate:expires tag (default 72h)",
    )
    p_preview = commands.add_parser("preview", help="pulumi preview --refresh of a stack")
    p_preview.add_argument("--stack", required=True, help="an existing stack, e.g. prod")
    p_destroy = commands.add_parser("destroy", help="destroy stack pr-<N> and remove it")
    p_destroy.add_argument("--pr", type=parse_pr, required=True)
    p_cleanup = commands.add_parser("cleanup", help="destroy expired PR stacks")
    p_cleanup.add_argument(
        "--older-than",
        type=parse_duration,
        required=True,
        help="idle time after which an untagged PR stack expires, e.g. 72h",
    )
    p_cleanup.add_argument("--dry-run", action="store_true", help="list them only")
    args = parser.parse_args(argv)

    def progress(line: str) -> None:
        print(line, end="" if line.endswith("\n") else "\n", file=sys.stderr)

    try:
        now = clock.now()
        # Invalid settings fail before the CLI is even looked for.
        config = pr_stack_config(args.pr) if args.command == "up" else {}
        if args.command == "preview":
            load_stack_settings(args.stack)
        backend = backend or PulumiBackend.connect(secrets_provider=args.secrets_provider)
        if args.command == "up":
            outputs = up(backend, args.pr, config, args.ttl, now, progress)
            print(json.dumps(outputs, indent=2))
        elif args.command == "preview":
            summary, changed = preview(backend, args.stack, progress)
            print(summary, end="")
            return 1 if changed else 0
        elif args.command == "destroy":
            if not destroy(backend, args.pr, progress):
                print(
                    f"{pr_stack_name(args.pr)}: no such stack, nothing to destroy", file=sys.stderr
                )
        else:
            expired, failures = cleanup(backend, args.older_than, now, args.dry_run, progress)
            print(json.dumps({"expired": [e.stack for e in expired], "failed": failures}))
            if failures:
                print("error: " + "; ".join(failures), file=sys.stderr)
                return 2
    except (PreviewError, SettingsError, clock.ClockError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the CLI's own errors: a concurrent update, a failed step, ...
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_timestamp(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _cli_reason(exc: Exception) -> str:
    """The first line the CLI wrote to stderr (CommandError carries code, stdout and stderr)."""
    stderr = str(exc).split("stderr:", 1)[-1]
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[0] if lines else "no details"


if __name__ == "__main__":
    sys.exit(main())
