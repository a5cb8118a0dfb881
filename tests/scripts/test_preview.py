"""Real previews: the command flow against a fake workspace (no Pulumi CLI, no AWS)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from planning.settings import SETTINGS_KEY
from scripts import preview
from scripts.offline_cloud import ROOT, stack_config
from scripts.preview import EXPIRES_TAG, PR_TAG, StackNotFoundError
from tests.helpers import TEST_NOW

NOW = datetime.fromisoformat(TEST_NOW)


@dataclass
class Output:
    value: Any
    secret: bool = False


@dataclass
class UpResult:
    outputs: Mapping[str, Output]


@dataclass
class PreviewResult:
    stdout: str
    change_summary: Mapping[str, int]


@dataclass
class Summary:
    name: str
    last_update: datetime | None = None
    update_in_progress: bool | None = False


@dataclass
class FakeStack:
    name: str
    backend: FakeWorkspace

    def up(self, *, on_output, policy_packs) -> UpResult:
        assert policy_packs == [str(ROOT / "policies")], "every update runs the policy pack"
        self.backend.calls.append(("up", self.name))
        on_output("Updating (pr)\n")
        return UpResult({"cdn_domain_name": Output("d1.cloudfront.net"), "key": Output("x", True)})

    def preview(self, *, refresh: bool, diff: bool, on_output, policy_packs) -> PreviewResult:
        assert policy_packs == [str(ROOT / "policies")], "every preview runs the policy pack"
        self.backend.calls.append(("preview", self.name, refresh, diff))
        return PreviewResult(
            "~ aws:autoscaling:Group web update [diff: ~maxSize]\n", self.backend.change_summary
        )

    def destroy(self, *, on_output) -> None:
        self.backend.calls.append(("destroy", self.name))
        if self.name in self.backend.failing:
            raise RuntimeError(f"{self.name}: BucketNotEmpty")


@dataclass
class FakeWorkspace:
    """Records every call in order; stacks, tags and config live in dicts."""

    stacks: dict[str, Summary] = field(default_factory=dict)
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    config: dict[str, dict[str, str]] = field(default_factory=dict)
    change_summary: Mapping[str, int] = field(default_factory=lambda: {"same": 140})
    failing: set[str] = field(default_factory=set)
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def select(self, stack: str, *, create: bool) -> FakeStack:
        self.calls.append(("select", stack, create))
        if stack not in self.stacks:
            if not create:
                raise StackNotFoundError(stack)
            self.stacks[stack] = Summary(stack)
        return FakeStack(stack, self)

    def list_stacks(self) -> Sequence[Summary]:
        return list(self.stacks.values())

    def set_all_config(self, stack: str, config: Mapping[str, str]) -> None:
        self.calls.append(("set_all_config", stack))
        self.config[stack] = dict(config)

    def set_tag(self, stack: str, key: str, value: str) -> None:
        self.calls.append(("set_tag", stack, key, value))
        self.tags.setdefault(stack, {})[key] = value

    def list_tags(self, stack: str) -> Mapping[str, str]:
        return self.tags.get(stack, {})

    def remove_stack(self, stack: str) -> None:
        self.calls.append(("remove_stack", stack))
        del self.stacks[stack]


@pytest.fixture
def workspace() -> FakeWorkspace:
    return FakeWorkspace()


def test_up_creates_pr_stack_with_template_config_tags_then_updates(workspace, capsys) -> None:
    assert preview.main(["up", "--pr", "42"], backend=workspace) == 0
    assert workspace.calls == [
        ("select", "pr-42", True),
        ("set_all_config", "pr-42"),
        ("set_tag", "pr-42", PR_TAG, "42"),
        ("set_tag", "pr-42", EXPIRES_TAG, "2028-10-04T00:00:00Z"),
        ("up", "pr-42"),
    ]
    outputs = json.loads(capsys.readouterr().out)
    assert outputs == {"cdn_domain_name": "d1.cloudfront.net", "key": "[secret]"}


def test_pr_stack_config_is_the_template_with_its_own_host_and_tag(workspace) -> None:
    preview.main(["up", "--pr", "7", "--ttl", "1d"], backend=workspace)
    config = workspace.config["pr-7"]
    template = stack_config("pr")
    assert config["aws:region"] == template["aws:region"]
    settings = json.loads(config[SETTINGS_KEY])
    origin = template[SETTINGS_KEY]["load_balancer"]["origin_domain_name"]
    assert settings["load_balancer"]["origin_domain_name"] == f"pr-7.{origin}"
    assert settings["tags"]["PullRequest"] == "7"
    assert settings["fleet"] == template[SETTINGS_KEY]["fleet"]
    assert workspace.tags["pr-7"][EXPIRES_TAG] == "2028-10-02T00:00:00Z"


def test_invalid_template_fails_before_any_stack_is_touched(workspace, monkeypatch, capsys):
    broken = stack_config("pr")
    broken[SETTINGS_KEY]["fleet"]["max_size"] = 0
    monkeypatch.setattr(preview, "stack_config", lambda _stack: broken)
    assert preview.main(["up", "--pr", "3"], backend=workspace) == 2
    assert "floodgate:settings.fleet.max_size" in capsys.readouterr().err
    assert workspace.calls == []


def test_preview_of_prod_refreshes_and_summarises_changes(workspace, capsys) -> None:
    workspace.stacks["prod"] = Summary("prod")
    workspace.change_summary = {"same": 139, "update": 1, "create": 2}
    assert preview.main(["preview", "--stack", "prod"], backend=workspace) == 1
    assert workspace.calls == [("select", "prod", False), ("preview", "prod", True, True)]
    summary = capsys.readouterr().out
    assert summary.startswith(
        "**`pulumi preview` of `prod`: 2 to create, 1 to update** (139 same)."
    )
    assert "~ aws:autoscaling:Group web update" in summary


def test_preview_without_changes_exits_0(workspace, capsys) -> None:
    workspace.stacks["prod"] = Summary("prod")
    workspace.change_summary = {"same": 140, "refresh": 140}
    assert preview.main(["preview", "--stack", "prod"], backend=workspace) == 0
    assert "no changes** (140 same)" in capsys.readouterr().out


def test_preview_of_a_missing_stack_says_how_to_create_it(workspace, capsys) -> None:
    assert preview.main(["preview", "--stack", "staging"], backend=workspace) == 2
    assert "`pulumi stack init staging`" in capsys.readouterr().err


def test_preview_of_an_unknown_stack_file_stops_before_the_backend(workspace, capsys) -> None:
    assert preview.main(["preview", "--stack", "nope"], backend=workspace) == 2
    assert "stack 'nope'" in capsys.readouterr().err
    assert workspace.calls == []


def test_destroy_destroys_then_removes_the_stack(workspace) -> None:
    workspace.stacks["pr-9"] = Summary("pr-9")
    assert preview.main(["destroy", "--pr", "9"], backend=workspace) == 0
    assert workspace.calls == [
        ("select", "pr-9", False),
        ("destroy", "pr-9"),
        ("remove_stack", "pr-9"),
    ]
    assert "pr-9" not in workspace.stacks


def test_destroying_a_stack_that_never_existed_succeeds(workspace, capsys) -> None:
    assert preview.main(["destroy", "--pr", "9"], backend=workspace) == 0
    assert workspace.calls == [("select", "pr-9", False)]
    assert "no such stack" in capsys.readouterr().err


def stacks_of_every_kind(workspace: FakeWorkspace) -> None:
    day = timedelta(days=1)
    for summary, tags in [
        (Summary("pr-1", NOW - day), {EXPIRES_TAG: "2028-09-30T23:00:00Z"}),  # expired tag
        (Summary("pr-2", NOW - 9 * day), {EXPIRES_TAG: "2028-10-08T00:00:00Z"}),  # tag holds
        (Summary("pr-3", NOW - 4 * day), {}),  # untagged, idle 4 days
        (Summary("pr-4", NOW - day), {}),  # untagged, idle 1 day
        (Summary("acme/floodgate/pr-5", NOW - 4 * day), {}),  # qualified name, idle
        (Summary("pr-6", NOW - 9 * day, update_in_progress=True), {}),  # being updated
        (Summary("prod", NOW - 90 * day), {EXPIRES_TAG: "2000-01-01T00:00:00Z"}),
        (Summary("pr-demo", NOW - 90 * day), {}),
        (Summary("pr-7", None), {EXPIRES_TAG: "not a time"}),  # never updated, bad tag
    ]:
        workspace.stacks[summary.name.rsplit("/", 1)[-1]] = summary
        workspace.tags[summary.name.rsplit("/", 1)[-1]] = tags


def test_cleanup_destroys_only_expired_pr_stacks(workspace, capsys) -> None:
    stacks_of_every_kind(workspace)
    assert preview.main(["cleanup", "--older-than", "72h"], backend=workspace) == 0
    destroyed = [call[1] for call in workspace.calls if call[0] == "destroy"]
    assert destroyed == ["pr-1", "pr-3", "pr-5"]
    assert json.loads(capsys.readouterr().out) == {
        "expired": ["pr-1", "pr-3", "pr-5"],
        "failed": [],
    }
    assert {"prod", "pr-demo", "pr-2", "pr-4", "pr-6", "pr-7"} <= workspace.stacks.keys()


def test_a_pr_stack_lives_exactly_its_idle_time_or_its_tag(workspace) -> None:
    """72 h idle is expired; a second less is not. A tag expiring a second from now holds."""
    second, hours_72 = timedelta(seconds=1), timedelta(hours=72)
    for name, updated, tags in [
        ("pr-10", NOW - hours_72, {}),
        ("pr-11", NOW - hours_72 + second, {}),
        ("pr-12", NOW - 9 * hours_72, {EXPIRES_TAG: preview._timestamp(NOW + second)}),
        ("pr-13", NOW - second, {EXPIRES_TAG: preview._timestamp(NOW)}),
    ]:
        workspace.stacks[name] = Summary(name, updated)
        workspace.tags[name] = tags
    expired = {e.stack for e in preview.expired_pr_stacks(workspace, hours_72, NOW)}
    assert expired == {"pr-10", "pr-13"}


def test_cleanup_dry_run_changes_nothing(workspace, capsys) -> None:
    stacks_of_every_kind(workspace)
    assert preview.main(["cleanup", "--older-than", "72h", "--dry-run"], backend=workspace) == 0
    assert workspace.calls == []
    assert "would destroy pr-3: last updated 2028-09-27T00:00:00Z" in capsys.readouterr().err


def test_cleanup_goes_on_after_a_failure_and_exits_2(workspace, capsys) -> None:
    stacks_of_every_kind(workspace)
    workspace.failing = {"pr-1"}
    assert preview.main(["cleanup", "--older-than", "72h"], backend=workspace) == 2
    assert [c[1] for c in workspace.calls if c[0] == "remove_stack"] == ["pr-3", "pr-5"]
    assert "pr-1: BucketNotEmpty" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["72", "0h", "30m", "91d", "1w", "-3h", ""])
def test_durations_outside_1h_to_90d_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"e\.g\. 72h|between 1h and 90d"):
        preview.parse_duration(text)


def test_pr_numbers_must_be_positive_integers(capsys) -> None:
    for bad in ["0", "-1", "4a", "pr-4"]:
        with pytest.raises(SystemExit):
            preview.main(["destroy", "--pr", bad], backend=FakeWorkspace())
    assert "a pull request number such as 42" in capsys.readouterr().err


# --- what is checked before the real Automation API is used -------------------------------------


@pytest.fixture
def no_aws(monkeypatch, tmp_path) -> None:
    """No AWS credentials anywhere, and no instance-metadata lookup (no network)."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)


def fake_cli(tmp_path: Path, logged_in: bool) -> Path:
    """A `pulumi` executable that answers `version` and `whoami` as the real CLI does."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    whoami = (
        'echo \'{"user": "ci", "url": "https://app.pulumi.com"}\''
        if logged_in
        else "echo 'error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive "
        "CLI sessions' >&2; exit 255"
    )
    cli = bin_dir / "pulumi"
    cli.write_text(
        "#!/bin/sh\n"
        'for arg in "$@"; do case "$arg" in\n'
        "  version) echo v3.272.0; exit 0 ;;\n"
        f"  whoami) {whoami}; exit 0 ;;\n"
        "esac; done\nexit 1\n"
    )
    cli.chmod(0o755)
    return bin_dir


def test_missing_cli_is_named_with_how_to_install_it(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert preview.main(["destroy", "--pr", "1"]) == 2
    err = capsys.readouterr().err
    assert "the Pulumi CLI is not on PATH" in err
    assert "https://www.pulumi.com/docs/install/" in err


def test_missing_aws_credentials_are_named(monkeypatch, tmp_path, no_aws, capsys) -> None:
    monkeypatch.setenv("PATH", str(fake_cli(tmp_path, logged_in=True)))
    assert preview.main(["destroy", "--pr", "1"]) == 2
    assert "no AWS credentials: run `aws sso login" in capsys.readouterr().err


def test_missing_backend_login_is_named(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("PATH", str(fake_cli(tmp_path, logged_in=False)))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert preview.main(["destroy", "--pr", "1"]) == 2
    err = capsys.readouterr().err
    assert "not logged in to a Pulumi backend: set PULUMI_ACCESS_TOKEN" in err
    assert "the CLI said: error: PULUMI_ACCESS_TOKEN must be set" in err


def test_with_cli_credentials_and_login_the_real_workspace_connects(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(fake_cli(tmp_path, logged_in=True)))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    backend = preview.PulumiBackend.connect()
    assert Path(backend.workspace.work_dir) == preview.ROOT


def test_long_preview_output_keeps_its_end_within_the_comment_limit() -> None:
    lines = [f"  ~ aws:lambda:Function fn-{i} update [diff: ~code]" for i in range(3000)]
    result = PreviewResult("\n".join(lines) + "\nResources: 3000 to update\n", {"update": 3000})
    summary, changed = preview.preview_markdown("prod", result)
    assert changed
    assert len(summary) < preview.COMMENT_LIMIT_CHARS
    assert "Resources: 3000 to update" in summary, "the engine's totals at the end are kept"
    assert "fn-0 update" not in summary


def test_the_pr_preview_runs_the_pack_and_reads_only_what_its_role_may() -> None:
    """The preview role is ReadOnlyAccess, which cannot GetSecretValue the secret versions a
    refresh reads: the preview diffs against state, and the policy pack runs on it."""
    import yaml

    from scripts.offline_cloud import ROOT

    workflow = yaml.safe_load((ROOT / ".github/workflows/pr-preview.yml").read_text())
    (step,) = [
        s for s in workflow["jobs"]["preview"]["steps"] if "pulumi/actions" in s.get("uses", "")
    ]
    assert step["with"]["command"] == "preview"
    assert step["with"]["refresh"] is False
    assert step["with"]["policyPacks"] == "policies"
    assert (ROOT / step["with"]["policyPacks"] / "PulumiPolicy.yaml").is_file()


# --- issue 25: cleanup's loop, the preview's counts, the TTL's bounds ---------------------------


def test_a_stack_that_is_no_candidate_does_not_end_the_search(workspace) -> None:
    """Catches a `break` where a stack is skipped: prod and a stack being updated, listed
    first, must not hide the expired PR stack listed after them."""
    idle = NOW - timedelta(days=4)
    for summary in [
        Summary("prod", idle),
        Summary("pr-6", idle, update_in_progress=True),
        Summary("pr-3", idle),
    ]:
        workspace.stacks[summary.name] = summary
    expired = preview.expired_pr_stacks(workspace, timedelta(hours=72), NOW)
    assert [e.stack for e in expired] == ["pr-3"]


def test_only_whole_pr_names_are_candidates(workspace) -> None:
    """Catches the name pattern left open at its end: `pr-1-keep` and `pr-12abc` are not PR
    stacks, however long idle."""
    for name in ("pr-1-keep", "pr-12abc", "pr-08"):
        workspace.stacks[name] = Summary(name, NOW - timedelta(days=90))
    assert preview.expired_pr_stacks(workspace, timedelta(hours=72), NOW) == []


@pytest.mark.parametrize(
    "summary",
    [
        {"same": 130, "read": 10},  # data sources and `get` resources are read, not changed
        {"same": 140, "update": 0, "delete": 0},  # an operation counted zero times
    ],
)
def test_reads_and_zero_counts_are_no_change(workspace, capsys, summary) -> None:
    """Catches "read" dropped from the no-change operations and a zero count taken as a
    change: either would fail the PR check (exit 1) on a preview that changes nothing."""
    workspace.stacks["prod"] = Summary("prod")
    workspace.change_summary = summary
    assert preview.main(["preview", "--stack", "prod"], backend=workspace) == 0
    assert "no changes**" in capsys.readouterr().out


def test_the_automation_apis_op_types_are_counted_by_their_value() -> None:
    """Catches the summary keyed by str(op): the Automation API's change_summary is keyed by
    OpType members, whose value ("same", "update") is the operation."""
    from pulumi.automation import OpType

    result = PreviewResult("", {OpType.SAME: 139, OpType.UPDATE: 1, OpType.READ: 2})
    summary, changed = preview.preview_markdown("prod", result)
    assert changed
    assert summary.startswith("**`pulumi preview` of `prod`: 1 to update** (139 same).")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", timedelta(hours=1)),
        ("60m", timedelta(hours=1)),
        ("90d", timedelta(days=90)),
        ("2160h", timedelta(days=90)),
    ],
)
def test_durations_of_exactly_1h_and_90d_are_accepted(text: str, expected: timedelta) -> None:
    """Catches either bound made exclusive: 1 hour and 90 days are both allowed."""
    assert preview.parse_duration(text) == expected
