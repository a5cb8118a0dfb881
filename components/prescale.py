"""Pre-scaling inside AWS: the scheduled actions that put each planned event's capacity in
service before each of its stages, and the runner that carries every other lever.

- Auto Scaling scheduled actions raise and lower MinSize at each stage's time (AWS runs them,
  up to two minutes late).
- The runner, a Lambda that EventBridge Scheduler invokes every `prescale.run_every_minutes`
  with the night plan as its input, makes one pass of the pre-scale engine
  (functions/prescale/) over every lever: LCU reservation steps, the warm pool, the room's
  calendar, a group below its stage (a missed action), the actions' sizes and floors. It reports
  what AWS has not given, and alarms page a human: a failed lever, a shortfall in service or in
  effect, a runner that stopped, an invocation Scheduler could not deliver (its dead-letter
  queue). Nothing on the night waits for a CI runner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components import iam
from components.alarms import metric_alarm
from components.service_role import service_role
from functions.prescale.handler import ENVIRONMENT
from functions.prescale.night_plan import OWNED_PREFIX, NightPlan
from planning import clock
from planning.event_plan import EventPlan, scheduled_actions
from planning.settings import RUNNER_CONCURRENCY, PrescaleSettings

CODE_DIR = Path(__file__).resolve().parent.parent / "functions/prescale"
RUNTIME, ARCH = "python3.13", "arm64"
KEEP = -1
"""-1: the provider leaves that size alone when the action runs (pulumi-aws Schedule)."""
ACTION_SIZES = ["minSize", "maxSize", "desiredCapacity"]
"""The runner owns the actions' sizes (a floor, an operator's raised max); Pulumi creates
each action with the plan's and never puts them back, even after a refresh."""
METRIC_NAMESPACE = "Floodgate/Prescale"
DLQ_RETENTION_S = 14 * 86_400
"""SQS keeps a message at most 14 days: time enough to read why an invocation was lost."""


@dataclass(frozen=True, kw_only=True)
class PrescaleArgs:
    plans: list[EventPlan]
    night_plan: NightPlan
    """The same plans as the runner acts on them (planning.event_plan.night_plan)."""
    settings: PrescaleSettings
    group_name: pulumi.Input[str]
    group_arn: pulumi.Input[str]
    alb_arn: pulumi.Input[str]
    room_table: pulumi.Input[str] | None
    room_table_arn: pulumi.Input[str] | None
    alarm_topic_arn: pulumi.Input[str]
    log_retention_days: int
    tags: dict[str, str]
    now: datetime
    """Actions due within `create_ahead_s` of it are not declared (see planning.event_plan)."""


def rate(minutes: int) -> str:
    """A Scheduler rate expression: `rate(1 minute)`, `rate(5 minutes)` (the unit agrees with
    the value, Scheduler user guide, rate-based schedules)."""
    return f"rate({minutes} minute{'s' if minutes > 1 else ''})"


class Prescale(pulumi.ComponentResource):
    """Per planned event, one MinSize action per stage change (each its own lead before the
    stage) and the restore (end + cooldown); and the runner. Actions are
    `<name>-<event key>-stage-<n>` in Pulumi and keep their AWS names (`floodgate-<key>-…`).

    Named outputs: `action_names`, `schedule_name` (the runner's), `dlq_url`, `function_name`."""

    action_names: list[str]
    schedule_name: pulumi.Output[str]
    dlq_url: pulumi.Output[str]
    function_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: PrescaleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("floodgate:prescale:Prescale", name, None, opts)
        self._name, self._args = name, args
        self._child = pulumi.ResourceOptions(parent=self)
        self._account = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id
        self.action_names = self._declare_actions()
        function = self._declare_runner_function()
        self._declare_runner_schedule(function)
        self._declare_alarms(function)
        self.register_outputs(
            {
                "scheduled_actions": self.action_names,
                "schedule_name": self.schedule_name,
                "dlq_url": self.dlq_url,
            }
        )

    def _declare_actions(self) -> list[str]:
        """One Auto Scaling scheduled action per MinSize step, none setting desired. Pulumi
        creates them and owns their times; their sizes are the runner's (ignored), and one
        Pulumi stops declaring (due within `create_ahead_s`, or past) stays in AWS until AWS
        runs it (retain_on_delete): an update in the minutes after a stage's time must not
        delete an action AWS has yet to run."""
        args = self._args
        ahead = timedelta(seconds=args.settings.create_ahead_s)
        actions = scheduled_actions(args.plans, args.now, ahead)
        for action in actions:
            aws.autoscaling.Schedule(
                f"{self._name}-{action.name.removeprefix(OWNED_PREFIX)}",
                scheduled_action_name=action.name,
                autoscaling_group_name=args.group_name,
                start_time=clock.aws_timestamp(action.start),
                time_zone=action.time_zone,
                min_size=action.min_size,
                max_size=action.max_size,
                desired_capacity=KEEP,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # Named by the action alone before 2026-11: the alias keeps each in place
                    # (https://www.pulumi.com/docs/iac/concepts/resources/options/aliases/).
                    aliases=[pulumi.Alias(name=action.name)],
                    ignore_changes=ACTION_SIZES,
                    retain_on_delete=True,
                ),
            )
        return [a.name for a in actions]

    def _declare_runner_function(self) -> aws.lambda_.Function:
        """The engine as a Lambda: its own logs, a role that may change this stack's group,
        load balancer and room calendar and nothing else, one run at a time, never retried
        (the next pass is minutes away)."""
        name, args, child = self._name, self._args, self._child
        function_name = f"{name}-prescale"
        logs = aws.cloudwatch.LogGroup(
            f"{name}-prescale",
            name=f"/aws/lambda/{function_name}",
            retention_in_days=args.log_retention_days,
            tags=args.tags,
            opts=child,
        )
        role = service_role(
            f"{name}-prescale", "lambda.amazonaws.com", args.tags, child, self._account
        )
        own_logs = iam.Grant(
            ["logs:CreateLogStream", "logs:PutLogEvents"], pulumi.Output.concat(logs.arn, ":*")
        )
        aws.iam.RolePolicy(
            f"{name}-prescale",
            role=role.id,
            policy=iam.policy([*self._grants(), own_logs]),
            opts=child,
        )
        function = aws.lambda_.Function(
            f"{name}-prescale",
            name=function_name,
            runtime=RUNTIME,
            architectures=[ARCH],
            handler="prescale.handler.handler",
            code=pulumi.AssetArchive(
                {
                    f"prescale/{path.name}": pulumi.FileAsset(str(path))
                    for path in sorted(CODE_DIR.glob("*.py"))
                }
            ),
            role=role.arn,
            timeout=self._period_s - 10,
            memory_size=256,
            reserved_concurrent_executions=RUNNER_CONCURRENCY,
            environment={"variables": self._environment()},
            logging_config={"log_format": "JSON", "log_group": logs.name},
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs]),
        )
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-prescale",
            function_name=function.name,
            maximum_retry_attempts=0,
            maximum_event_age_in_seconds=min(self._period_s, 21_600),
            opts=child,
        )
        self.function_name = function.name
        return function

    @property
    def _period_s(self) -> int:
        return self._args.settings.run_every_minutes * 60

    def _environment(self) -> dict[str, pulumi.Input[str]]:
        """The runner's FG_* contract (functions/prescale/handler.ENVIRONMENT)."""
        args = self._args
        environment: dict[str, pulumi.Input[str]] = {
            "FG_STACK": args.night_plan.stack,
            "FG_ASG_NAME": args.group_name,
            "FG_ALB_ARN": args.alb_arn,
            "FG_ROOM_TABLE": args.room_table if args.room_table is not None else "",
            "FG_METRIC_NAMESPACE": METRIC_NAMESPACE,
        }
        assert tuple(environment) == ENVIRONMENT, "the runner's environment contract changed"
        return environment

    def _grants(self) -> list[iam.Grant]:
        """Writes on this stack's group, load balancer and the room's calendar item only. Auto
        Scaling's and ELB's Describe actions have no resource-level permissions."""
        args = self._args
        grants = [
            iam.Grant(
                [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeScheduledActions",
                    "autoscaling:DescribeWarmPool",
                    "elasticloadbalancing:DescribeCapacityReservation",
                ],
                "*",
            ),
            iam.Grant(
                [
                    "autoscaling:PutScheduledUpdateGroupAction",
                    "autoscaling:DeleteScheduledAction",
                    "autoscaling:PutWarmPool",
                    "autoscaling:UpdateAutoScalingGroup",
                ],
                args.group_arn,
            ),
            iam.Grant(["elasticloadbalancing:ModifyCapacityReservation"], args.alb_arn),
            iam.Grant(
                ["cloudwatch:PutMetricData"],
                "*",
                condition={"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}},
            ),
            # Following the night reads the load balancer's RequestCount (follow.py).
            # GetMetricData has no resource-level permissions: its resource is "*" (Service
            # Authorization Reference, Amazon CloudWatch).
            iam.Grant(["cloudwatch:GetMetricData"], "*"),
        ]
        if args.room_table_arn is not None:
            # The calendar it writes; the room's state it reads (a queueing room's count is
            # not the night's: following reads it as the forecast).
            grants += [
                iam.Grant(
                    ["dynamodb:GetItem"], args.room_table_arn, leading_keys=["calendar", "room"]
                ),
                iam.Grant(["dynamodb:PutItem"], args.room_table_arn, leading_keys=["calendar"]),
            ]
        return grants

    def _declare_runner_schedule(self, function: aws.lambda_.Function) -> None:
        """EventBridge Scheduler invokes the runner every interval with the night plan as its
        input. An invocation it cannot deliver is retried twice within the interval, then kept
        in a dead-letter queue (a standard SQS queue, as Scheduler requires) that alarms."""
        name, args, child = self._name, self._args, self._child
        dlq = aws.sqs.Queue(
            f"{name}-prescale-dlq",
            message_retention_seconds=DLQ_RETENTION_S,
            sqs_managed_sse_enabled=True,
            tags=args.tags,
            opts=child,
        )
        role = service_role(
            f"{name}-prescale-schedule", "scheduler.amazonaws.com", args.tags, child, self._account
        )
        aws.iam.RolePolicy(
            f"{name}-prescale-schedule",
            role=role.id,
            policy=iam.policy(
                [
                    iam.Grant(["lambda:InvokeFunction"], function.arn),
                    iam.Grant(["sqs:SendMessage"], dlq.arn),
                ]
            ),
            opts=child,
        )
        schedule = aws.scheduler.Schedule(
            f"{name}-prescale",
            description="Floodgate pre-scale runner: every lever of the night plan",
            schedule_expression=rate(args.settings.run_every_minutes),
            flexible_time_window={"mode": "OFF"},
            target={
                "arn": function.arn,
                "role_arn": role.arn,
                "input": args.night_plan.to_json(),
                "retry_policy": {
                    "maximum_retry_attempts": 2,
                    "maximum_event_age_in_seconds": self._period_s,
                },
                "dead_letter_config": {"arn": dlq.arn},
            },
            opts=child,
        )
        self._dlq_name = dlq.name
        self.dlq_url = dlq.url
        self.schedule_name = schedule.name

    def _declare_alarms(self, function: aws.lambda_.Function) -> None:
        """What the runner could not do, or AWS did not give, to the alarm topic: one datapoint
        per pass (shortfalls after two, so that a stage's last launches can land)."""
        own = {
            "namespace": METRIC_NAMESPACE,
            "dimensions": {"Stack": self._args.night_plan.stack},
            "period": self._period_s,
        }
        self._alarm(
            "failures",
            "The pre-scale runner could not read or change a lever, or AWS failed a reservation",
            metric_name="Failures",
            statistic="Sum",
            **own,
        )
        self._alarm(
            "instances-short",
            "Fewer instances in service than the running stage needs",
            evaluation_periods=2,
            metric_name="InstanceShortfall",
            statistic="Maximum",
            **own,
        )
        self._alarm(
            "lcus-short",
            "Fewer reserved LCUs in effect than the running stage needs",
            evaluation_periods=2,
            metric_name="LcuShortfall",
            statistic="Maximum",
            **own,
        )
        self._alarm(
            "stopped",
            "The pre-scale runner has not passed for 3 intervals: nothing acts on the levers",
            evaluation_periods=3,
            comparison="LessThanThreshold",
            missing="breaching",
            metric_name="Passes",
            statistic="Sum",
            **own,
        )
        self._alarm(
            "errors",
            "The pre-scale runner failed: its environment or its plan is unreadable",
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimensions={"FunctionName": function.name},
            statistic="Sum",
            period=self._period_s,
        )
        self._alarm(
            "undelivered",
            "Scheduler could not invoke the pre-scale runner: see its dead-letter queue",
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": self._dlq_name},
            statistic="Maximum",
            period=300,
        )

    def _alarm(self, label: str, description: str, **metric: object) -> None:
        """`<name>-prescale-<label>`, firing at 1 or more (less than 1 for `stopped`)."""
        metric_alarm(
            f"{self._name}-prescale-{label}",
            description,
            topic_arn=self._args.alarm_topic_arn,
            threshold=1,
            tags=self._args.tags,
            opts=self._child,
            **metric,  # type: ignore[arg-type]
        )
