"""The runner: EventBridge Scheduler invokes it every `prescale.run_every_minutes` with the
night plan as its input (components/prescale.py). Each invocation is one pass of the engine
(levers.py) over every lever, then what AWS gave, published as metrics the stack alarms on:

  Passes              1 per pass (missing: the runner stopped; an alarm treats it as breaching)
  Failures            layers that could not be read or changed, and reservations AWS failed
  Writes              changes made
  InstanceShortfall   instances the running stage needs minus those in service (0: none)
  LcuShortfall        LCUs the running stage needs minus those in effect (0: none)

Every figure comes from the plan and the `FG_*` environment, which has no defaults: a missing
variable stops the invocation naming it (the function's Errors alarm).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.config import Config

from .levers import Change, Clients, Pass, Targets, apply_pass, plan_pass
from .night_plan import NightPlan, timestamp

ENVIRONMENT = ("FG_STACK", "FG_ASG_NAME", "FG_ALB_ARN", "FG_ROOM_TABLE", "FG_METRIC_NAMESPACE")
"""The runner's whole configuration; FG_ALB_ARN and FG_ROOM_TABLE may be empty (none)."""
RETRIES = Config(
    retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=15
)
"""Throttled calls are retried within the pass (standard mode backs off up to 20 s); what is
still throttled is done by the next pass, minutes later, not by the next CI run."""
STOP_BEFORE_TIMEOUT_S = 20
"""No layer starts in the last 20 s of the invocation: each is done whole or left whole."""


class RunnerConfigError(ValueError):
    """The function's environment is incomplete; the message names every variable."""


@dataclass(frozen=True)
class RunnerConfig:
    stack: str
    targets: Targets
    namespace: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RunnerConfig:
        missing = [name for name in ENVIRONMENT if name not in env]
        empty = [n for n in ("FG_STACK", "FG_ASG_NAME", "FG_METRIC_NAMESPACE") if env.get(n) == ""]
        if missing or empty:
            raise RunnerConfigError(
                f"runner environment: missing {missing or 'none'}, empty {empty or 'none'} "
                "(components/prescale.py sets every FG_* variable)"
            )
        targets = Targets(
            env["FG_ASG_NAME"], env["FG_ALB_ARN"] or None, env["FG_ROOM_TABLE"] or None
        )
        return cls(env["FG_STACK"], targets, env["FG_METRIC_NAMESPACE"])


def metrics(found: Pass) -> dict[str, float]:
    """The pass's figures by metric name (see the module docstring)."""
    short = {s.lever: 0 for s in found.shortfalls}
    for s in found.shortfalls:
        short[s.lever] = max(short[s.lever], s.needed - s.actual)
    return {
        "Passes": 1,
        "Failures": len(found.failures),
        "Writes": len(found.writes),
        "InstanceShortfall": short.get("instances", 0),
        "LcuShortfall": short.get("lcus", 0),
    }


def run(
    plan: NightPlan,
    clients: Clients,
    cloudwatch: Any,
    config: RunnerConfig,
    now: datetime,
    out_of_time: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """One pass at `now`: plan, apply, publish. Returns the summary it logs."""
    # The plan is the last deploy's: actions of events it does not know are the job's to judge.
    found = plan_pass(clients, config.targets, plan, now, out_of_time, delete_unknown=False)
    apply_pass(found, lambda change, result: _log(change, now, result))
    figures = metrics(found)
    dimensions = [{"Name": "Stack", "Value": config.stack}]
    try:
        cloudwatch.put_metric_data(
            Namespace=config.namespace,
            MetricData=[
                {"MetricName": name, "Dimensions": dimensions, "Value": value, "Unit": "Count"}
                for name, value in figures.items()
            ],
        )
    except Exception as exc:  # the missing Passes datapoint alarms on its own
        print(json.dumps({"at": timestamp(now), "error": f"metrics not published: {exc}"}))
    summary = {
        "at": timestamp(now),
        "metrics": figures,
        "failures": [f"{f.layer} {f.target}: {f.error}" for f in found.failures],
        "following": found.shares,
        "shortfalls": [
            f"{s.event}: {s.lever} {s.actual} in effect, {s.needed} needed"
            for s in found.shortfalls
        ],
    }
    print(json.dumps(summary, sort_keys=True))
    return summary


def _log(change: Change, now: datetime, result: str) -> None:
    line = {"at": timestamp(now), "layer": change.layer, "action": change.action,
            "target": change.target, "detail": change.detail, "result": result}  # fmt: skip
    print(json.dumps(line, sort_keys=True, default=str))


def _now() -> datetime:
    return datetime.now(UTC)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Scheduler's entry point: `event` is the night plan (the schedule's input)."""
    config = RunnerConfig.from_env(os.environ)
    plan = NightPlan.from_document(event)
    session = boto3.Session()
    client = lambda name: session.client(name, config=RETRIES)  # noqa: E731
    clients = Clients(
        client("autoscaling"), client("elbv2"), client("dynamodb"), client("cloudwatch")
    )
    stop_at = time.monotonic() + context.get_remaining_time_in_millis() / 1000
    stop_at -= STOP_BEFORE_TIMEOUT_S
    return run(
        plan,
        clients,
        client("cloudwatch"),
        config,
        _now(),
        lambda: time.monotonic() > stop_at,
    )
