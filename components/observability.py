"""Alarm topics, alarms along the request path, and one dashboard that shows it at a glance."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam
from components.alarms import metric_alarm
from planning.settings import AlarmSettings

PERIOD_S = 60


@dataclass(frozen=True, kw_only=True)
class ObservabilityArgs:
    settings: AlarmSettings
    region: str
    alb_arn_suffix: pulumi.Input[str]
    target_group_arn_suffix: pulumi.Input[str]
    group_name: pulumi.Input[str]
    fleet_max_size: int
    distribution_id: pulumi.Input[str]
    us_east_1: aws.Provider
    """CloudFront metrics live in us-east-1; an alarm can only notify a topic in its region."""
    gate_function_name: pulumi.Input[str] | None = None
    """The waiting room's gate (a CloudFront Function): its fail-open log lines raise an alarm."""
    edge_log_retention_days: int = 30
    tags: dict[str, str]


class Observability(pulumi.ComponentResource):
    """Every alarm notifies `topic` (or `edge_topic` for CloudFront, same subscribers)."""

    topic: aws.sns.Topic
    edge_topic: aws.sns.Topic
    alarms: list[aws.cloudwatch.MetricAlarm]
    origin_5xx_alarms: list[aws.cloudwatch.MetricAlarm]
    """The ALB's and the targets' 5xx-rate alarms: the waiting room pauses admissions on them."""

    def __init__(
        self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("floodgate:observability:Observability", name, None, opts)
        self._name, self._args = name, args
        self._child = pulumi.ResourceOptions(parent=self)
        self._edge_child = pulumi.ResourceOptions(parent=self, provider=args.us_east_1)
        self._declare_topics()
        self._declare_alarms()
        if args.gate_function_name is not None:
            self.alarms.append(self._declare_gate_alarm(args.gate_function_name))
        self._declare_dashboard()
        self.register_outputs({"alarm_topic_arn": self.topic.arn})

    def _declare_topics(self) -> None:
        """The alarm topic in the stack's region and the edge topic in us-east-1, each with
        the e-mail subscriptions. CloudWatch publishes to an encrypted topic only if the key
        policy lets it use the key, which AWS-managed alias/aws/sns cannot: one
        customer-managed key per region."""
        name, tags, child, edge_child = self._name, self._args.tags, self._child, self._edge_child
        account_id = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id
        self.topic = aws.sns.Topic(
            f"{name}-alarms",
            kms_master_key_id=_alarm_key(f"{name}-alarms", account_id, tags, child).arn,
            tags=tags,
            opts=child,
        )
        self.edge_topic = aws.sns.Topic(
            f"{name}-edge-alarms",
            kms_master_key_id=_alarm_key(f"{name}-edge-alarms", account_id, tags, edge_child).arn,
            tags=tags,
            opts=edge_child,
        )
        topics = (
            (f"{name}-alarms", self.topic, child),
            (f"{name}-edge-alarms", self.edge_topic, edge_child),
        )
        for i, email in enumerate(self._args.settings.email_subscriptions):
            for topic_name, topic, topic_opts in topics:
                aws.sns.TopicSubscription(
                    f"{topic_name}-email-{i}",
                    topic=topic.arn,
                    protocol="email",
                    endpoint=email,
                    opts=topic_opts,
                )

    def _alarm(
        self,
        label: str,
        description: str,
        threshold: float,
        alarm_opts: pulumi.ResourceOptions | None = None,
        topic: aws.sns.Topic | None = None,
        **metric: Any,
    ) -> aws.cloudwatch.MetricAlarm:
        """`<name>-<label>`, breaching for the settings' evaluation periods, to `topic` (the
        alarm topic unless given)."""
        periods = self._args.settings.evaluation_periods
        return metric_alarm(
            f"{self._name}-{label}",
            description,
            topic_arn=(topic or self.topic).arn,
            threshold=threshold,
            tags=self._args.tags,
            opts=alarm_opts or self._child,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            **metric,
        )

    def _declare_alarms(self) -> None:
        """Along the request path: origin 5xx rates (the room pauses on these), response
        times, unhealthy hosts, the fleet at its max, and viewers' 5xx at CloudFront."""
        self.origin_5xx_alarms = self._origin_5xx_alarms()
        self.alarms = [*self.origin_5xx_alarms, *self._fleet_alarms(), self._viewer_alarm()]

    def _origin_5xx_alarms(self) -> list[aws.cloudwatch.MetricAlarm]:
        """The ALB's own 5xx and the targets' 5xx, each as a percentage of requests."""
        s, alb = self._args.settings, {"LoadBalancer": self._args.alb_arn_suffix}
        target = {**alb, "TargetGroup": self._args.target_group_arn_suffix}
        return [
            self._alarm(
                f"{label}-5xx-rate",
                f"{who} 5xx above {pct}% of requests",
                pct,
                metric_queries=_rate_queries("AWS/ApplicationELB", errors, "RequestCount", dims),
            )
            for label, who, pct, errors, dims in (
                ("alb", "ALB's own", s.alb_5xx_rate_pct, "HTTPCode_ELB_5XX_Count", alb),
                ("target", "Targets'", s.target_5xx_rate_pct, "HTTPCode_Target_5XX_Count", target),
            )
        ]

    def _fleet_alarms(self) -> list[aws.cloudwatch.MetricAlarm]:
        """Response time (p95, p99), unhealthy targets, and the group at its max size."""
        args, s = self._args, self._args.settings
        target = {"LoadBalancer": args.alb_arn_suffix, "TargetGroup": args.target_group_arn_suffix}
        return [
            *(
                self._alarm(
                    f"response-time-{p}",
                    f"Target {p} response time above {limit} s",
                    limit,
                    namespace="AWS/ApplicationELB",
                    metric_name="TargetResponseTime",
                    dimensions=target,
                    extended_statistic=p,
                    period=PERIOD_S,
                )
                for p, limit in (("p95", s.response_time_p95_s), ("p99", s.response_time_p99_s))
            ),
            self._alarm(
                "unhealthy-hosts",
                f"{s.unhealthy_hosts}+ targets failing health checks",
                s.unhealthy_hosts,
                namespace="AWS/ApplicationELB",
                metric_name="UnHealthyHostCount",
                dimensions=target,
                statistic="Maximum",
                period=PERIOD_S,
            ),
            self._alarm(
                "fleet-at-max",
                f"Fleet at its max of {args.fleet_max_size}: no headroom left",
                args.fleet_max_size,
                namespace="AWS/AutoScaling",
                metric_name="GroupInServiceInstances",
                dimensions={"AutoScalingGroupName": args.group_name},
                statistic="Maximum",
                period=PERIOD_S,
            ),
        ]

    def _viewer_alarm(self) -> aws.cloudwatch.MetricAlarm:
        """Viewers' 5xx rate at CloudFront; its metrics live in us-east-1, so does the alarm."""
        pct = self._args.settings.cloudfront_5xx_rate_pct
        return self._alarm(
            "cloudfront-5xx-rate",
            f"Viewers' 5xx above {pct}%",
            pct,
            alarm_opts=self._edge_child,
            topic=self.edge_topic,
            namespace="AWS/CloudFront",
            metric_name="5xxErrorRate",
            dimensions={"DistributionId": self._args.distribution_id, "Region": "Global"},
            statistic="Average",
            period=PERIOD_S,
        )

    def _declare_dashboard(self) -> None:
        """One dashboard of the request path, edge to fleet."""
        args = self._args
        aws.cloudwatch.Dashboard(
            f"{self._name}-request-path",
            dashboard_name=f"{pulumi.get_project()}-{pulumi.get_stack()}-request-path",
            dashboard_body=pulumi.Output.all(
                alb=args.alb_arn_suffix,
                tg=args.target_group_arn_suffix,
                group=args.group_name,
                dist=args.distribution_id,
            ).apply(lambda ids: json.dumps(_dashboard(ids, args.region))),
            opts=self._child,
        )

    def _declare_gate_alarm(self, function_name: pulumi.Input[str]) -> aws.cloudwatch.MetricAlarm:
        """The gate logs to CloudWatch Logs in us-east-1, group /aws/cloudfront/function/<name>
        (CloudFront Developer Guide, "Edge function logs"; best effort). A metric filter counts
        its fail-open lines; one in five minutes means the room is not holding anyone."""
        logs = aws.cloudwatch.LogGroup(
            f"{self._name}-gate-logs",
            name=pulumi.Output.concat("/aws/cloudfront/function/", function_name),
            retention_in_days=self._args.edge_log_retention_days,
            tags=self._args.tags,
            opts=self._edge_child,
        )
        aws.cloudwatch.LogMetricFilter(
            f"{self._name}-gate-fail-open",
            log_group_name=logs.name,
            pattern=f'"{GATE_FAIL_OPEN}"',
            metric_transformation={
                "namespace": GATE_NAMESPACE,
                "name": "GateFailOpen",
                "value": "1",
                "default_value": "0",
            },
            opts=self._edge_child,
        )
        return self._alarm(
            "gate-fail-open",
            "The waiting-room gate let requests through unchecked (room or key unreadable)",
            1,
            alarm_opts=self._edge_child,
            topic=self.edge_topic,
            namespace=GATE_NAMESPACE,
            metric_name="GateFailOpen",
            statistic="Sum",
            period=300,
        )


GATE_NAMESPACE = "Floodgate/Edge"
GATE_FAIL_OPEN = "floodgate-gate fail-open"
"""What functions/edge/gate.js logs when it lets a request through unchecked."""


def _alarm_key(
    name: str, account_id: pulumi.Output[str], tags: dict[str, str], opts: pulumi.ResourceOptions
) -> aws.kms.Key:
    """A key for an alarm topic: the account administers it, CloudWatch alarms of this account
    may encrypt with it (kms:GenerateDataKey*, kms:Decrypt), as SNS's docs require."""
    policy = account_id.apply(
        lambda account_id: iam.document(
            [
                {
                    "Sid": "AccountAdministers",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "CloudWatchAlarmsPublish",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudwatch.amazonaws.com"},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
                },
            ]
        )
    )
    return aws.kms.Key(
        name,
        description=f"{name}: SNS alarm topic encryption (CloudWatch may publish)",
        enable_key_rotation=True,
        deletion_window_in_days=30,
        policy=policy,
        tags=tags,
        opts=opts,
    )


def _rate_queries(
    namespace: str, errors: str, total: str, dimensions: dict[str, Any]
) -> list[dict[str, Any]]:
    """Metric math: errors as a percentage of requests over one minute."""

    def metric(query_id: str, metric_name: str) -> dict[str, Any]:
        return {
            "id": query_id,
            "return_data": False,
            "metric": {
                "namespace": namespace,
                "metric_name": metric_name,
                "dimensions": dimensions,
                "period": PERIOD_S,
                "stat": "Sum",
            },
        }

    return [
        metric("errors", errors),
        metric("requests", total),
        {
            "id": "rate",
            "label": f"{errors} %",
            "return_data": True,
            "expression": "IF(requests > 0, 100 * errors / requests, 0)",
        },
    ]


def _dashboard(ids: dict[str, str], region: str) -> dict[str, Any]:
    """Left to right along the request path: edge, load balancer, fleet; one column of two
    widgets (8 x 6 grid units each) per tier."""
    alb, tg, group, dist = ids["alb"], ids["tg"], ids["group"], ids["dist"]

    def edge(metric: str) -> list[Any]:
        return ["AWS/CloudFront", metric, "DistributionId", dist, "Region", "Global"]

    def elb(metric: str, *more: Any) -> list[Any]:
        return ["AWS/ApplicationELB", metric, "LoadBalancer", alb, *more]

    def target(metric: str, *more: Any) -> list[Any]:
        return elb(metric, "TargetGroup", tg, *more)

    def fleet(metric: str) -> list[Any]:
        return ["AWS/AutoScaling", metric, "AutoScalingGroupName", group]

    columns: list[list[tuple[str, str, str, list[list[Any]]]]] = [
        [
            ("1. CloudFront requests", "us-east-1", "Sum", [edge("Requests")]),
            ("1. CloudFront error rate %", "us-east-1", "Average",
             [edge("5xxErrorRate"), edge("4xxErrorRate")]),
        ],
        [
            ("2. ALB requests and 5xx", region, "Sum",
             [elb("RequestCount"), elb("HTTPCode_ELB_5XX_Count"),
              elb("HTTPCode_Target_5XX_Count")]),
            ("2. Target response time p95/p99 (s)", region, "p95",
             [target("TargetResponseTime", {"stat": "p95"}),
              target("TargetResponseTime", {"stat": "p99"})]),
        ],
        [
            ("3. Fleet: in service / desired / max", region, "Maximum",
             [fleet("GroupInServiceInstances"), fleet("GroupDesiredCapacity"),
              fleet("GroupMaxSize"), fleet("WarmPoolWarmedCapacity")]),
            ("3. Target health", region, "Maximum",
             [target("HealthyHostCount"), target("UnHealthyHostCount")]),
        ],
    ]  # fmt: skip
    return {
        "widgets": [
            _widget(8 * x, 6 * y, title, metrics, widget_region, stat)
            for x, column in enumerate(columns)
            for y, (title, widget_region, stat, metrics) in enumerate(column)
        ]
    }


def _widget(
    x: int, y: int, title: str, metrics: list[list[Any]], region: str, stat: str
) -> dict[str, Any]:
    """A CloudWatch metric widget, 8 x 6 grid units, one-minute points."""
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": 8,
        "height": 6,
        "properties": {
            "title": title,
            "region": region,
            "stat": stat,
            "period": PERIOD_S,
            "view": "timeSeries",
            "metrics": metrics,
        },
    }
