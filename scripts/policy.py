"""The policy pack, offline: every rule of policies/ over a stack's offline plan.

Usage: python -m scripts.policy --stack prod [--failures]

Evaluates the stack under Pulumi's mocks (as `make plan` does), feeds what it registered to
the pack's own policy objects (policies/offline.py) and prints one row per rule and resource:
rule, resource, verdict (pass, FAIL, n/a, exception) and the message (for n/a and exception,
why). The same rules run in the engine with `pulumi preview --policy-pack policies`.
Exit codes: 0 every rule holds, 1 a rule fails, 2 invalid settings or stack.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

if not __package__:  # run by path (`python scripts/policy.py`): make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import scripts  # noqa: F401 - without the project's dependencies: its own interpreter

from planning import clock
from planning.calendar import CalendarError
from planning.event_plan import PlanError
from planning.settings import SettingsError, load_stack_settings
from policies.offline import PlanResource, Verdict, evaluate
from scripts.offline_cloud import OfflineRun, reveal, run_offline, stack_config
from scripts.text_table import fitted


def plan_resources(run: OfflineRun) -> list[PlanResource]:
    return [
        PlanResource(
            urn=r.urn,
            type=r.type,
            name=r.name,
            inputs=r.revealed(),
            outputs=reveal(r.outputs),
            protect=r.protect,
            ignore_changes=r.ignore_changes,
            dependencies=r.dependencies,
            parent=r.parent,
            create_timeout_s=r.create_timeout_s,
        )
        for r in run.registrations
    ]


def verdicts_for(run: OfflineRun) -> list[Verdict]:
    return evaluate(plan_resources(run))


def summary(verdicts: list[Verdict]) -> str:
    """One line: how many (rule, resource) verdicts hold, fail, do not apply, or are
    documented exceptions."""
    counts = Counter(v.outcome for v in verdicts)
    rules = {v.rule for v in verdicts}
    failing = sorted({v.rule for v in verdicts if v.outcome == "fail"})
    verdict = "FAILS " + ", ".join(failing) if failing else "passes"
    return (
        f"policy pack      {verdict} ({len(rules)} rules, {counts['pass']} pass, "
        f"{counts['fail']} fail, {counts['n/a']} n/a, "
        f"{counts['exception']} documented exceptions)"
    )


def table(verdicts: list[Verdict], failures_only: bool = False) -> list[str]:
    shown = [v for v in verdicts if not failures_only or v.outcome != "pass"]
    rows = [("rule", "resource", "verdict", "message")] + [
        (v.rule, v.resource, "FAIL" if v.outcome == "fail" else v.outcome, v.message) for v in shown
    ]
    return fitted(rows, free_text=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml")
    parser.add_argument("--failures", action="store_true", help="show only failures and exceptions")
    args = parser.parse_args(argv)
    try:
        load_stack_settings(args.stack)
        clock.now()  # a bad FLOODGATE_NOW is refused before the program runs
        run = run_offline(args.stack, stack_config(args.stack))
        verdicts = verdicts_for(run)
    except (SettingsError, CalendarError, PlanError, clock.ClockError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"Floodgate policy pack: stack {args.stack}")
    print("\n".join(table(verdicts, args.failures)))
    print()
    print(summary(verdicts))
    return 1 if any(v.outcome == "fail" for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
