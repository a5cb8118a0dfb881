"""The one way a component declares a CloudWatch metric alarm: it notifies a topic on ALARM and
on OK, and reads missing data as not breaching unless told otherwise."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws


def metric_alarm(
    resource_name: str,
    description: str,
    *,
    topic_arn: pulumi.Input[str],
    threshold: float,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
    evaluation_periods: int = 1,
    datapoints_to_alarm: int | None = None,
    comparison: str = "GreaterThanOrEqualToThreshold",
    missing: str = "notBreaching",
    **metric: Any,
) -> aws.cloudwatch.MetricAlarm:
    """An alarm on `metric`: `namespace`, `metric_name`, `dimensions`, a statistic and `period`
    (seconds), or `metric_queries` (metric math). It fires after `datapoints_to_alarm` of the
    last `evaluation_periods` periods breach (all of them when None)."""
    return aws.cloudwatch.MetricAlarm(
        resource_name,
        alarm_description=description,
        comparison_operator=comparison,
        threshold=threshold,
        evaluation_periods=evaluation_periods,
        datapoints_to_alarm=datapoints_to_alarm,
        treat_missing_data=missing,
        alarm_actions=[topic_arn],
        ok_actions=[topic_arn],
        tags=tags,
        opts=opts,
        **metric,
    )
