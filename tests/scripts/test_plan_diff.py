"""The offline plan diff: what a reviewer reads in the PR comment, and its exit codes."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime import rpc

from scripts import offline_cloud, plan, plan_diff
from scripts.offline_cloud import ROOT, SECRET, is_secret, run_offline, stack_config
from scripts.plan_diff import ABSENT, Change, PlanDiffError, compare, to_markdown
from tests.helpers import stack_run, with_setting

GOLDEN = Path(__file__).parent / "golden"
STACK = "urn:pulumi:prod::floodgate::"


def resource(name: str, token: str, parent: str = "", **inputs: Any) -> dict[str, Any]:
    qualified = f"{parent}${token}" if parent else token
    return {
        "urn": f"{STACK}{qualified}::{name}",
        "type": token,
        "name": name,
        "parent": None,
        "inputs": inputs,
    }


def document(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "stack": "prod",
        "project": "floodgate",
        "resources": sorted(resources, key=lambda r: r["urn"]),
    }


GROUP = "aws:autoscaling/group:Group"
RULE = "aws:lb/listenerRule:ListenerRule"
TABLE = "aws:dynamodb/table:Table"


def inputs(plan: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r["inputs"] for r in plan["resources"] if r["name"] == name)


def base_plan() -> dict[str, Any]:
    return document(
        resource("web", GROUP, maxSize=120.0, tags=[{"key": "a", "value": "1"}]),
        resource("verify", RULE, conditions=SECRET, priority=10.0),
        resource("room", TABLE, billingMode="PAY_PER_REQUEST"),
        resource(
            "policy",
            "aws:iam/rolePolicy:RolePolicy",
            policy=json.dumps({"Statement": [{"Action": ["s3:GetObject"]}]}),
        ),
    )


def test_identical_plans_have_no_change_and_say_so() -> None:
    diff = compare(base_plan(), base_plan())
    assert not diff.has_changes
    assert to_markdown(diff, "`main`").startswith("**No change** to stack `prod` (4 resources).")


def test_added_resource_is_listed() -> None:
    head = base_plan()
    head["resources"].append(resource("extra", "aws:sns/topic:Topic"))
    diff = compare(base_plan(), head)
    assert [r.name for r in diff.added] == ["extra"]
    assert "- `aws:sns/topic:Topic` `extra`" in to_markdown(diff, "`main`")


def test_removed_table_warns_that_data_is_deleted() -> None:
    head = base_plan()
    head["resources"] = [r for r in head["resources"] if r["type"] != TABLE]
    text = to_markdown(compare(base_plan(), head), "`main`")
    assert text.splitlines()[0].endswith(":warning: **Deletes data:** DynamoDB table.")
    assert "- `aws:dynamodb/table:Table` `room` :warning: holds data" in text


def test_changed_scalar_shows_before_and_after() -> None:
    head = base_plan()
    inputs(head, "web")["maxSize"] = 140.0
    diff = compare(base_plan(), head)
    assert diff.changed[0].changes == [Change("maxSize", 120.0, 140.0)]
    assert "  - `maxSize`: `120` → `140`" in to_markdown(diff, "`main`")


def test_changed_nested_list_shows_the_path_into_it() -> None:
    before = {"ingress": [{"port": 443.0, "cidrs": ["10.0.0.0/16"]}, {"port": 80.0}]}
    after = {"ingress": [{"port": 443.0, "cidrs": ["10.0.0.0/16", "10.1.0.0/16"]}, {"port": 80.0}]}
    assert list(plan_diff._changes(before, after, "")) == [
        Change("ingress[0].cidrs[1]", ABSENT, "10.1.0.0/16")
    ]


def test_replaced_list_element_is_compared_field_by_field() -> None:
    head = base_plan()
    inputs(head, "web")["tags"] = [{"key": "a", "value": "2"}]
    changes = compare(base_plan(), head).changed[0].changes
    assert changes == [Change("tags[0].value", "1", "2")]


def test_inserted_list_element_is_one_change() -> None:
    before = {"rules": ["a", "b", "c"]}
    after = {"rules": ["a", "x", "b", "c"]}
    assert list(plan_diff._changes(before, after, "")) == [Change("rules[1]", ABSENT, "x")]


def test_json_in_a_string_is_compared_inside() -> None:
    head = base_plan()
    inputs(head, "policy")["policy"] = json.dumps(
        {"Statement": [{"Action": ["s3:GetObject", "s3:PutObject"]}]}
    )
    changes = compare(base_plan(), head).changed[0].changes
    assert changes == [Change("policy » Statement[0].Action[1]", ABSENT, "s3:PutObject")]


def test_secret_that_changed_is_never_shown() -> None:
    base, head = base_plan(), base_plan()
    # The secret's value changed (both plans mask it) along with a plain input.
    inputs(head, "verify")["priority"] = 11.0
    # An input that was plain and is now secret: its old value is not repeated either.
    inputs(base, "verify")["actions"] = "hunter2-origin-header"
    inputs(head, "verify")["actions"] = SECRET
    text = to_markdown(compare(base, head), "`main`")
    assert "hunter2" not in text
    assert "  - `actions`: `[secret]` → `[secret]`" in text
    assert "  - `priority`: `10` → `11`" in text
    assert "conditions" not in text


def test_moved_resource_is_flagged_for_an_alias() -> None:
    head = base_plan()
    moved = next(r for r in head["resources"] if r["name"] == "web")
    moved["urn"] = f"{STACK}floodgate:fleet:Fleet${GROUP}::web"
    diff = compare(base_plan(), head)
    assert (diff.added, diff.removed, len(diff.moved)) == ([], [], 1)
    assert "1 moved (replaced unless aliased)" in plan_diff.verdict(diff)


def test_a_table_removed_and_another_added_is_no_move() -> None:
    """Only identical inputs make a move: a different table in place of the old one is a
    deletion of the data (and its warning), not a rename."""
    head = base_plan()
    table = next(r for r in head["resources"] if r["type"] == TABLE)
    table.update(urn=f"{STACK}{TABLE}::room-v2", name="room-v2")
    table["inputs"] = {**table["inputs"], "name": "room-v2"}
    diff = compare(base_plan(), head)
    assert diff.moved == []
    assert [r.name for r in diff.removed] == ["room"] and [r.name for r in diff.added] == [
        "room-v2"
    ]
    assert ":warning: **Deletes data:** DynamoDB table." in plan_diff.verdict(diff)


def renamed_web(head: dict[str, Any], *aliases: str) -> dict[str, Any]:
    web = next(r for r in head["resources"] if r["name"] == "web")
    web.update(urn=f"{STACK}{GROUP}::fleet-web", name="fleet-web", aliases=list(aliases))
    return web


def test_renamed_resource_with_an_alias_is_kept_not_moved() -> None:
    head = base_plan()
    renamed_web(head, f"{STACK}{GROUP}::web")
    diff = compare(base_plan(), head)
    assert not diff.has_changes
    assert (diff.moved, diff.unchanged, len(diff.renamed)) == ([], 4, 1)
    text = to_markdown(diff, "`main`")
    assert text.startswith("**No change** to stack `prod` (4 resources, 1 renamed under an alias).")
    assert f"  - was `{STACK}{GROUP}::web`" in text


def test_renamed_resource_is_compared_with_what_its_alias_names() -> None:
    head = base_plan()
    renamed_web(head, f"{STACK}{GROUP}::elsewhere", f"{STACK}{GROUP}::web")["inputs"]["maxSize"] = (
        9.0
    )
    diff = compare(base_plan(), head)
    assert [(c.resource.name, c.changes) for c in diff.changed] == [
        ("fleet-web", [Change("maxSize", 120.0, 9.0)])
    ]
    assert (diff.added, diff.removed, diff.moved) == ([], [], [])


def test_alias_to_a_urn_the_base_lacks_is_no_rename() -> None:
    head = base_plan()
    renamed_web(head, f"{STACK}{GROUP}::never-was")
    diff = compare(base_plan(), head)
    assert (diff.renamed, len(diff.moved)) == ([], 1)


def test_code_change_is_shown_as_a_line_diff() -> None:
    base = {"code": "one\ntwo\nthree\n"}
    head = {"code": "one\n2\nthree\n"}
    (change,) = plan_diff._changes(base, head, "")
    lines = plan_diff._change_lines(change)
    assert lines[0] == "  - `code`: text, 3 → 3 lines"
    assert "    -two" in lines and "    +2" in lines


def test_summary_matches_the_golden_comment() -> None:
    head = base_plan()
    inputs(head, "web")["maxSize"] = 140.0
    head["resources"] = [r for r in head["resources"] if r["type"] != TABLE]
    head["resources"].append(resource("extra", "aws:sns/topic:Topic", displayName="alerts"))
    text = to_markdown(compare(base_plan(), head), "`main` (0123456789)")
    assert text == (GOLDEN / "plan_diff.md").read_text(encoding="utf-8")


def test_long_summary_is_cut_below_githubs_comment_limit() -> None:
    many = [resource(f"t{i:04}", "aws:sns/topic:Topic") for i in range(2000)]
    text = to_markdown(compare(document(), document(*many)), "`main`", limit_chars=5000)
    assert len(text) < 5000
    assert text.rstrip().endswith("more resources not shown (comment size limit).")
    shown = text.count("\n- `aws:sns/topic:Topic`")
    assert f"… {2000 - shown} more resources" in text


def test_plans_of_different_stacks_are_refused() -> None:
    other = base_plan() | {"stack": "dev"}
    with pytest.raises(PlanDiffError, match=r"floodgate/prod and the new plan of floodgate/dev"):
        compare(base_plan(), other)


def test_plan_exits_0_without_change_and_1_with_change(tmp_path, capsys) -> None:
    base = tmp_path / "base.json"
    base.write_text(stack_run("dev").plan_json())
    out = tmp_path / "out"
    assert plan.main(["--stack", "dev", "--out", str(out), "--diff", str(base)]) == 0
    assert capsys.readouterr().out.startswith("**No change** to stack `dev`")

    smaller = copy.deepcopy(stack_run("dev").plan_document())
    dropped = smaller["resources"].pop()
    base.write_text(json.dumps(smaller))
    assert plan.main(["--stack", "dev", "--out", str(out), "--diff", str(base)]) == 1
    summary = capsys.readouterr().out
    assert f"`{dropped['name']}`" in summary.split("### Added (1)")[1]
    assert (out / "plan-diff-dev.md").read_text() == summary


def test_plan_diff_with_a_bad_base_exits_2_before_planning(tmp_path, capsys) -> None:
    base = tmp_path / "base.json"
    base.write_text('{"stack": "dev"}')
    assert plan.main(["--stack", "dev", "--out", str(tmp_path / "out"), "--diff", str(base)]) == 2
    assert "not a plan document" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.ca", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository holding this project's files, committed once."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    repo = tmp_path / "repo"
    for name in listed:
        if (ROOT / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    _git(repo, "init", "--quiet")
    _git(repo, "add", "--all")
    _git(repo, "commit", "--quiet", "-m", "base")
    return repo


@pytest.mark.long
def test_plan_diff_compares_two_git_refs_in_a_worktree(repo: Path, capsys) -> None:
    stack_file = repo / "stacks" / "Pulumi.dev.yaml"
    text = stack_file.read_text()
    assert "max_size: 4" in text
    stack_file.write_text(text.replace("max_size: 4", "max_size: 5"))
    _git(repo, "commit", "--quiet", "-am", "dev may grow to 5")

    out = repo / "build"
    assert plan_diff.main(["--repo", str(repo), "--base", "HEAD~1", "--stack", "dev"]) == 1
    captured = capsys.readouterr()
    summary = captured.out
    assert "planning dev at HEAD~1" in captured.err and "working tree" in captured.err
    assert "  - `maxSize`: `4` → `5`" in summary
    assert "`HEAD~1`" in summary.splitlines()[2]
    assert (out / "plan-diff-dev.md").read_text() == summary
    worktrees = subprocess.run(
        ["git", "-C", str(repo), "worktree", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert len(worktrees.splitlines()) == 1, "the temporary worktree is removed"

    assert plan_diff.main(["--repo", str(repo), "--base", "HEAD", "--stack", "dev"]) == 0


def test_plan_diff_names_an_unknown_ref(repo: Path, capsys) -> None:
    assert plan_diff.main(["--repo", str(repo), "--base", "no-such-branch"]) == 2
    assert "unknown git ref 'no-such-branch'" in capsys.readouterr().err


# --- issue 25: what counts as deleting data, moves, list removals, row order and fences -----


@pytest.mark.parametrize(
    ("token", "kind"),
    [
        ("aws:dynamodb/table:Table", "DynamoDB table"),
        ("aws:s3/bucket:Bucket", "S3 bucket"),
        ("aws:secretsmanager/secret:Secret", "secret"),
        ("aws:cloudwatch/logGroup:LogGroup", "log group"),
        ("aws:cloudfront/keyValueStore:KeyValueStore", "KeyValueStore"),
    ],
)
def test_removing_any_resource_that_holds_data_warns(token: str, kind: str) -> None:
    """Catches a type dropped from the stateful list: removing a bucket, a secret, a log group
    or the room's KeyValueStore (its signing keys) deletes data, as a table does."""
    base = document(resource("held", token, retentionInDays=7.0))
    diff = compare(base, document())
    assert plan_diff.verdict(diff).endswith(f":warning: **Deletes data:** {kind}.")
    assert f"- `{token}` `held` :warning: holds data" in to_markdown(diff, "`main`")


def test_a_resource_of_another_type_with_the_same_inputs_is_no_move() -> None:
    """Catches moves paired on inputs alone: a log group removed and a topic added, both with
    no inputs, is a deletion of the logs, not a rename."""
    base = document(resource("access", "aws:cloudwatch/logGroup:LogGroup"))
    head = document(resource("alerts", "aws:sns/topic:Topic"))
    diff = compare(base, head)
    assert diff.moved == []
    assert [r.name for r in diff.removed] == ["access"] and [r.name for r in diff.added] == [
        "alerts"
    ]
    assert "Deletes data:** log group." in plan_diff.verdict(diff)


def test_one_added_resource_is_the_move_of_one_removed_twin_only() -> None:
    """Catches a new resource paired with every removed twin: two identical groups removed and
    one added under a component is one move and one removal (no crash, nothing lost)."""
    base = document(resource("a", GROUP, maxSize=4.0), resource("b", GROUP, maxSize=4.0))
    head = document(resource("c", GROUP, "floodgate:fleet:Fleet", maxSize=4.0))
    diff = compare(base, head)
    assert [(m.before.name, m.after.name) for m in diff.moved] == [("a", "c")]
    assert [r.name for r in diff.removed] == ["b"] and diff.added == []


def test_a_removed_list_element_is_a_change() -> None:
    """Catches list removals dropped: an ingress rule taken out is `rules[1]` from its value
    to absent, and the resource counts as changed."""
    base = document(resource("web", GROUP, rules=["a", "b", "c"]))
    head = document(resource("web", GROUP, rules=["a", "c"]))
    diff = compare(base, head)
    assert [c.changes for c in diff.changed] == [[Change("rules[1]", "b", ABSENT)]]
    assert diff.has_changes


def test_rows_are_listed_in_urn_order() -> None:
    """Catches unsorted or reversed rows: removed, changed and added resources each follow
    their URNs, so two runs of one diff give one comment."""
    names = ["b", "c", "a"]
    base = document(
        *[resource(f"gone-{n}", "aws:sns/topic:Topic") for n in names],
        *[resource(f"kept-{n}", GROUP, maxSize=1.0) for n in names],
    )
    head = document(
        *[resource(f"new-{n}", "aws:sns/topic:Topic", displayName=n) for n in names],
        *[resource(f"kept-{n}", GROUP, maxSize=2.0) for n in names],
    )
    diff = compare(base, head)
    assert [r.name for r in diff.removed] == ["gone-a", "gone-b", "gone-c"]
    assert [c.resource.name for c in diff.changed] == ["kept-a", "kept-b", "kept-c"]
    assert [r.name for r in diff.added] == ["new-a", "new-b", "new-c"]


def test_a_long_text_diff_shows_40_lines_and_counts_the_rest() -> None:
    """Catches the cap on a text diff dropped: 100 changed lines of code show 40 diff lines
    and say how many more there are."""
    before = "".join(f"line {i}\n" for i in range(100))
    after = "".join(f"LINE {i}\n" for i in range(100))
    lines = plan_diff._change_lines(Change("code", before, after))
    body = [line for line in lines if line.startswith("    -") or line.startswith("    +")]
    assert len(body) <= 40
    # One hunk of 100 removals and 100 additions (n=1 context finds none): 201 lines after
    # the ---/+++ header, the @@ line included; 40 shown, 161 left.
    assert "    ... 161 more lines" in lines


def test_a_code_fence_is_longer_than_any_backtick_run_in_the_text() -> None:
    """Catches a fence as long as the longest run: text holding ``` (a Markdown file, a
    template) would close a ``` fence early."""
    assert plan_diff.code_fence("plain") == "```"
    assert plan_diff.code_fence("see ```sh\nmake\n```") == "````"
    assert plan_diff.code_fence("`````") == "``````"


def test_plans_of_different_projects_are_refused() -> None:
    """Catches the comparison of stacks alone: prod of another project is not this prod."""
    other = base_plan() | {"project": "other"}
    with pytest.raises(PlanDiffError, match=r"floodgate/prod and the new plan of other/prod"):
        compare(base_plan(), other)


DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
ORIGIN_FIELDS = {
    "load_balancer.origin_domain_name": ("origin.elsewhere.example.ca", "domainName"),
    "edge.origin_read_timeout_s": (45, "customOriginConfig.originReadTimeout"),
    "edge.origin_connection_timeout_s": (5, "connectionTimeout"),
    "edge.origin_connection_attempts": (2, "connectionAttempts"),
}
"""Each setting the distribution's load-balancer origins carry, a new value, and where the
origin holds it. `origins` is secret as a whole (its custom header carries the origin-verify
secret): the plan must still show each of them change."""


def _plan_with(setting: str, value: Any) -> dict[str, Any]:
    config = copy.deepcopy(stack_config("prod"))
    return run_offline("prod", with_setting(config, setting, value)).plan_document()


@pytest.mark.parametrize("setting", sorted(ORIGIN_FIELDS))
def test_a_change_inside_the_secret_origins_shows_in_the_diff(setting: str) -> None:
    value, field = ORIGIN_FIELDS[setting]
    diff = compare(stack_run("prod").plan_document(), _plan_with(setting, value))
    (cdn,) = [r for r in diff.changed if r.resource.type == DISTRIBUTION]
    changed = {c.path: c for c in cdn.changes}
    at = [path for path in changed if path.startswith("origins[") and path.endswith(field)]
    assert at, (setting, sorted(changed))
    assert all(changed[path].after == value for path in at)  # 45.0 == 45: the engine's doubles
    assert not any(is_secret(c.before) for c in changed.values())  # shown, not masked


def test_a_changed_secret_shows_as_changed_and_never_as_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another origin-verify value and other signing keys: every place that holds them says
    "[secret, changed]" (the header inside `origins`, the listener rule's condition, the
    secret versions), nothing else in those resources changes, and no value appears."""
    base = stack_run("prod").plan_document()
    computed = offline_cloud._computed

    def rotated(typ: str, name: str, inputs: dict[str, Any], region: str) -> Any:
        resource_id, out = computed(typ, name, inputs, region)
        return resource_id, {
            k: rpc.wrap_rpc_secret(rpc.unwrap_rpc_secret(v) + "-rotated")
            if rpc.is_rpc_secret(v) else v
            for k, v in out.items()
        }  # fmt: skip

    monkeypatch.setattr(offline_cloud, "_computed", rotated)
    head = run_offline("prod", stack_config("prod")).plan_document()
    text = json.dumps(head)
    assert "offline-" not in text and "rotated" not in text
    changes = [(r.resource.type, c) for r in compare(base, head).changed for c in r.changes]
    assert {c.after for _, c in changes} == {plan_diff.SECRET_CHANGED}
    paths = {(t.split(":")[-1], c.path) for t, c in changes}
    # KeyvaluestoreKey: the inbox's receipt secret, as its edge function reads it.
    assert {"Distribution", "ListenerRule", "SecretVersion", "KeyvaluestoreKey"} == {
        t for t, _ in paths
    }
    assert any(p.endswith("customHeaders[0].value") for t, p in paths if t == "Distribution")
    markdown = to_markdown(compare(base, head), "`main`")
    assert "[secret, changed]" in markdown and "offline-" not in markdown


def test_a_mark_depends_on_the_salt_and_never_shows_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain = offline_cloud.secret_mark("hunter2-origin-header")
    assert is_secret(plain) and "hunter2" not in plain
    assert offline_cloud.secret_mark("hunter2-origin-header") == plain  # plans stay identical
    monkeypatch.setenv(offline_cloud.SALT_ENV, "a-repository-secret")
    assert offline_cloud.secret_mark("hunter2-origin-header") != plain
