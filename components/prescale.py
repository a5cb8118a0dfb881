"""Scheduled actions that put each planned event's capacity in service before it starts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pulumi
import pulumi_aws as aws

from planning.event_plan import EventPlan
from planning.settings import FleetSettings

KEEP_DESIRED = -1
"""desired_capacity -1: the restore leaves desired alone and lets target tracking scale in."""


def aws_time(moment: datetime) -> str:
    """Scheduled-action start times are UTC, formatted YYYY-MM-DDThh:mm:ssZ."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, kw_only=True)
class PrescaleArgs:
    plans: list[EventPlan]
    fleet: FleetSettings
    group_name: pulumi.Input[str]
    now: datetime
    """Schedules whose time has passed are not declared: AWS rejects past start times on
    update (pulumi-aws issue 2473), and a one-off action that ran is gone from AWS anyway."""


class Prescale(pulumi.ComponentResource):
    """A raise (start - lead) and a restore (end + cooldown) per planned event."""

    action_names: list[str]
    """Names of the scheduled actions declared, in time order."""

    def __init__(
        self, name: str, args: PrescaleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("floodgate:prescale:Prescale", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.action_names = []
        for plan in args.plans:
            zone = plan.occurrence.time_zone
            if plan.raise_at > args.now:
                self.action_names.append(plan.raise_action)
                aws.autoscaling.Schedule(
                    plan.raise_action,
                    scheduled_action_name=plan.raise_action,
                    autoscaling_group_name=args.group_name,
                    start_time=aws_time(plan.raise_at),
                    time_zone=zone,
                    min_size=plan.desired,
                    desired_capacity=plan.desired,
                    max_size=plan.max_size,
                    opts=child,
                )
            if plan.restore_at > args.now:
                self.action_names.append(plan.restore_action)
                aws.autoscaling.Schedule(
                    plan.restore_action,
                    scheduled_action_name=plan.restore_action,
                    autoscaling_group_name=args.group_name,
                    start_time=aws_time(plan.restore_at),
                    time_zone=zone,
                    min_size=args.fleet.min_size,
                    desired_capacity=KEEP_DESIRED,
                    max_size=args.fleet.max_size,
                    opts=child,
                )
        self.register_outputs({"scheduled_actions": self.action_names})
