"""Observability: alarms along the request path, all wired to a topic; one dashboard."""

from __future__ import annotations

import json

import pulumi_aws as aws

from components.observability import Observability, ObservabilityArgs


def build(evaluate, settings):
    def program() -> None:
        Observability(
            "obs",
            ObservabilityArgs(
                settings=settings.alarms,
                region=settings.region,
                alb_arn_suffix="app/alb/1",
                target_group_arn_suffix="targetgroup/tg/2",
                group_name="web-asg",
                fleet_max_size=settings.fleet.max_size,
                distribution_id="EDIST",
                us_east_1=aws.Provider("use1", region="us-east-1"),
                tags={},
            ),
        )

    return evaluate(program)


def test_every_alarm_notifies_a_floodgate_topic(evaluate, prod) -> None:
    run = build(evaluate, prod)
    topics = {t.name: t for t in run.of_type("aws:sns/topic:Topic")}
    alarms = run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert len(alarms) == 7
    for alarm in alarms:
        (action,) = alarm.inputs["alarmActions"]
        assert action.rsplit(":", 1)[1] in topics, alarm.name
        assert alarm.inputs["okActions"] == alarm.inputs["alarmActions"]


def test_cloudfront_alarm_is_in_us_east_1_with_its_own_topic(evaluate, prod) -> None:
    run = build(evaluate, prod)
    provider = run.one("pulumi:providers:aws")
    edge = next(
        a
        for a in run.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.name == "obs-cloudfront-5xx-rate"
    )
    assert edge.provider.startswith(provider.urn)
    assert edge.inputs["alarmActions"][0].endswith(":obs-edge-alarms")
    assert edge.inputs["dimensions"] == {"DistributionId": "EDIST", "Region": "Global"}


def test_alarm_set_covers_the_request_path(evaluate, prod) -> None:
    names = {
        a.name for a in build(evaluate, prod).of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    }
    assert names == {
        "obs-alb-5xx-rate",
        "obs-target-5xx-rate",
        "obs-response-time-p95",
        "obs-response-time-p99",
        "obs-unhealthy-hosts",
        "obs-fleet-at-max",
        "obs-cloudfront-5xx-rate",
    }


def test_5xx_alarm_is_a_rate_not_a_count(evaluate, prod) -> None:
    alarm = next(
        a
        for a in build(evaluate, prod).of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.name == "obs-alb-5xx-rate"
    )
    expression = next(q for q in alarm.inputs["metricQueries"] if q.get("returnData"))
    assert "100 * errors / requests" in expression["expression"]
    assert alarm.inputs["threshold"] == prod.alarms.alb_5xx_rate_pct


def test_fleet_at_max_alarm_uses_the_stack_max(evaluate, prod) -> None:
    alarm = next(
        a
        for a in build(evaluate, prod).of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
        if a.name == "obs-fleet-at-max"
    )
    assert alarm.inputs["threshold"] == 120
    assert alarm.inputs["dimensions"] == {"AutoScalingGroupName": "web-asg"}


def test_dashboard_follows_the_request_path(evaluate, prod) -> None:
    board = build(evaluate, prod).one("aws:cloudwatch/dashboard:Dashboard")
    body = json.loads(board.inputs["dashboardBody"])
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert [t[0] for t in titles] == ["1", "1", "2", "2", "3", "3"]
    assert "EDIST" in board.inputs["dashboardBody"]
    assert "web-asg" in board.inputs["dashboardBody"]


def test_email_subscribers_get_both_topics(evaluate, prod) -> None:
    subscriptions = build(evaluate, prod).of_type("aws:sns/topicSubscription:TopicSubscription")
    assert {s.inputs["endpoint"] for s in subscriptions} == {"portal-oncall@example.ca"}
    assert len(subscriptions) == 2


def test_alarm_topics_use_keys_cloudwatch_may_use(evaluate, prod) -> None:
    """CloudWatch cannot publish to a topic under alias/aws/sns: its key policy is AWS's."""
    run = build(evaluate, prod)
    keys = {k.urn: k for k in run.of_type("aws:kms/key:Key")}
    assert len(keys) == 2, "one key per region: the stack's and us-east-1's"
    for topic in run.of_type("aws:sns/topic:Topic"):
        (key,) = [keys[u] for u in topic.dependencies if u in keys]
        assert topic.inputs["kmsMasterKeyId"] == key.outputs["arn"]
        assert key.inputs["enableKeyRotation"] is True
        statements = json.loads(key.inputs["policy"])["Statement"]
        (cloudwatch,) = [s for s in statements if s["Principal"].get("Service")]
        assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
        assert cloudwatch["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    regions = {k.outputs["arn"].split(":")[3] for k in keys.values()}
    assert regions == {"ca-central-1", "us-east-1"}


def test_each_alarm_fires_at_the_stacks_own_threshold(evaluate, prod) -> None:
    """Catches a threshold wired from another setting: prod's file says ALB 5xx 1 %, targets'
    5xx 2 %, p95 1 s, p99 3 s, viewers' 5xx 1 %, one unhealthy host."""
    alarms = {
        a.name: a.inputs
        for a in build(evaluate, prod).of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    }
    assert {name: a["threshold"] for name, a in alarms.items() if name != "obs-fleet-at-max"} == {
        "obs-alb-5xx-rate": 1.0,
        "obs-target-5xx-rate": 2.0,
        "obs-response-time-p95": 1.0,
        "obs-response-time-p99": 3.0,
        "obs-unhealthy-hosts": 1,
        "obs-cloudfront-5xx-rate": 1.0,
    }
    target = [q for q in alarms["obs-target-5xx-rate"]["metricQueries"] if "metric" in q]
    assert {q["metric"]["metricName"] for q in target} == {
        "HTTPCode_Target_5XX_Count",
        "RequestCount",
    }
    assert all(
        q["metric"]["dimensions"]
        == {"LoadBalancer": "app/alb/1", "TargetGroup": "targetgroup/tg/2"}
        for q in target
    ), "the target group's own errors and requests"
