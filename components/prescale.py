"""Scheduled actions that put each planned event's capacity in service before each of its
stages, and hand the floor back after it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pulumi
import pulumi_aws as aws

from planning import clock
from planning.event_plan import OWNED_PREFIX, EventPlan, scheduled_actions

KEEP_DESIRED = -1
"""desired_capacity -1: the restore leaves desired alone and lets target tracking scale in."""


@dataclass(frozen=True, kw_only=True)
class PrescaleArgs:
    plans: list[EventPlan]
    group_name: pulumi.Input[str]
    now: datetime
    """Actions whose time has passed are not declared (see planning.event_plan)."""


class Prescale(pulumi.ComponentResource):
    """Per planned event, one MinSize action per stage change (each its own lead before the
    stage) and the restore (end + cooldown). Each is `<name>-<event key>-stage-<n>` in Pulumi;
    in AWS it keeps the action's name (`floodgate-<event key>-…`), which the job looks for."""

    action_names: list[str]
    """Names of the scheduled actions declared, in time order."""

    def __init__(
        self, name: str, args: PrescaleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("floodgate:prescale:Prescale", name, None, opts)
        actions = scheduled_actions(args.plans, args.now)
        for action in actions:
            aws.autoscaling.Schedule(
                f"{name}-{action.name.removeprefix(OWNED_PREFIX)}",
                scheduled_action_name=action.name,
                autoscaling_group_name=args.group_name,
                start_time=clock.aws_timestamp(action.start),
                time_zone=action.time_zone,
                min_size=action.min_size,
                max_size=action.max_size,
                desired_capacity=KEEP_DESIRED if action.desired is None else action.desired,
                # Named by the action alone before 2026-11: the alias keeps each in place
                # (https://www.pulumi.com/docs/iac/concepts/resources/options/aliases/).
                opts=pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(name=action.name)]),
            )
        self.action_names = [a.name for a in actions]
        self.register_outputs({"scheduled_actions": self.action_names})
