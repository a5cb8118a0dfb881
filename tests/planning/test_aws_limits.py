"""AWS's documented limits, stated here with their sources and never read from planning/aws_facts:
each setting AWS bounds is accepted at its limit and refused one step past it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from planning.settings import SettingsError
from tests.helpers import settings_with

WAF_RATE_RULES = "AWS WAF developer guide, 'Rate-based rule high-level settings'"
"""https://docs.aws.amazon.com/waf/latest/developerguide/waf-rule-statement-type-rate-based-high-level-settings.html:
"The lowest limit setting allowed is 10"; evaluation windows "60 (1 minute), 120 (2 minutes),
300 (5 minutes), and 600 (10 minutes)"."""
CLOUDFRONT_ORIGIN = "CloudFront API reference, 'Origin'"
"""https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_Origin.html: ConnectionAttempts
"The minimum number is 1, the maximum is 3"; ConnectionTimeout "The minimum timeout is 1
second, the maximum is 10 seconds"."""
TARGET_GROUP = "Elastic Load Balancing API reference, 'TargetGroupAttribute'"
"""https://docs.aws.amazon.com/elasticloadbalancing/latest/APIReference/API_TargetGroupAttribute.html:
deregistration_delay.timeout_seconds "The range is 0-3600 seconds"; slow_start.duration_seconds
"The range is 30-900 seconds (15 minutes)"."""
LIFECYCLE_HOOK = "Amazon EC2 Auto Scaling API reference, 'PutLifecycleHook'"
"""https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutLifecycleHook.html:
HeartbeatTimeout "The range is from 30 to 7200 seconds"."""

SQS_QUEUE = "Amazon SQS API reference, 'SetQueueAttributes'"
"""https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html:
MessageRetentionPeriod "An integer from 60 seconds (1 minute) to 1,209,600 seconds (14 days)";
RedrivePolicy maxReceiveCount: "When the ReceiveCount for a message exceeds the
maxReceiveCount ... the minimum is 1, the maximum 1,000" (SQS developer guide, dead-letter
queues)."""

ROUND_ROBIN = {"load_balancer__load_balancing_algorithm": "round_robin"}
"""Slow start needs it: AWS refuses slow start with least outstanding requests."""

# (key, at the limit, one step past it, other changes the case needs, source)
LIMITS: list[tuple[str, Any, Any, dict[str, Any], str]] = [
    ("waf.rate_limit", 10, 9, {}, WAF_RATE_RULES),
    ("waf.asset_rate_limit", 10, 9, {}, WAF_RATE_RULES),
    ("waf.join_rate_limit", 10, 9, {}, WAF_RATE_RULES),
    ("waf.evaluation_window_s", 60, 59, {}, WAF_RATE_RULES),
    ("waf.evaluation_window_s", 120, 180, {}, WAF_RATE_RULES),
    ("waf.evaluation_window_s", 300, 240, {}, WAF_RATE_RULES),
    ("waf.evaluation_window_s", 600, 601, {}, WAF_RATE_RULES),
    ("edge.origin_connection_attempts", 1, 0, {}, CLOUDFRONT_ORIGIN),
    ("edge.origin_connection_attempts", 3, 4, {}, CLOUDFRONT_ORIGIN),
    ("edge.origin_connection_timeout_s", 1, 0, {}, CLOUDFRONT_ORIGIN),
    ("edge.origin_connection_timeout_s", 10, 11, {}, CLOUDFRONT_ORIGIN),
    ("load_balancer.deregistration_delay_s", 0, -1, {}, TARGET_GROUP),
    ("load_balancer.deregistration_delay_s", 3600, 3601, {}, TARGET_GROUP),
    ("load_balancer.slow_start_s", 30, 29, ROUND_ROBIN, TARGET_GROUP),
    ("load_balancer.slow_start_s", 900, 901, ROUND_ROBIN, TARGET_GROUP),
    ("fleet.launch_hook_timeout_s", 7200, 7201, {}, LIFECYCLE_HOOK),
    ("inbox.retention_s", 60, 59, {}, SQS_QUEUE),
    ("inbox.dlq_retention_s", 1_209_600, 1_209_601, {}, SQS_QUEUE),
    ("inbox.max_receive_count", 1, 0, {}, SQS_QUEUE),
    ("inbox.max_receive_count", 1_000, 1_001, {}, SQS_QUEUE),
]


@pytest.mark.parametrize(
    ("key", "limit", "past", "extra", "source"),
    LIMITS,
    ids=[f"{key}={limit}" for key, limit, *_ in LIMITS],
)
def test_a_setting_is_accepted_at_awss_limit_and_refused_past_it(
    prod_config, key: str, limit: Any, past: Any, extra: dict[str, Any], source: str
) -> None:
    """Catches a flipped or shifted boundary, or a member dropped from a list of allowed values,
    in a setting AWS bounds (the limit and the source are in the case, not in the code)."""
    settings_with(prod_config, **extra, **{key.replace(".", "__"): limit})
    with pytest.raises(SettingsError, match=rf"{re.escape(key)}: .*\(got {past}\)"):
        settings_with(prod_config, **{key.replace(".", "__"): past})


CLOUDWATCH_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip
"""CloudWatch Logs API reference, 'PutRetentionPolicy'
(https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html):
"Possible values are: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096,
1827, 2192, 2557, 2922, 3288, and 3653"."""


@pytest.mark.parametrize(
    "key",
    [
        "network.flow_log_retention_days",
        "edge.log_group_retention_days",
        "admission.log_group_retention_days",
        "prescale.log_group_retention_days",
    ],
)
def test_every_cloudwatch_retention_period_is_accepted_and_no_other(prod_config, key) -> None:
    """Catches a retention period dropped from, or added to, the list CloudWatch accepts."""
    for days in CLOUDWATCH_RETENTION_DAYS:
        settings_with(prod_config, **{key.replace(".", "__"): days})
    for days in (0, 2, 4, 364, 366, 730, 732, 3654):
        with pytest.raises(SettingsError, match="must be one of CloudWatch's retention periods"):
            settings_with(prod_config, **{key.replace(".", "__"): days})


AWS_TAGS_PER_RESOURCE = 50
"""AWS's tag restrictions, the same in every service's guide (e.g. Amazon Personalize developer
guide, "Guidelines and requirements",
https://docs.aws.amazon.com/personalize/latest/dg/personalize-managing-tags.html): "Maximum
number of tags per resource - 50", keys up to 128 characters, values up to 256, no `aws:`."""


def test_a_resource_carries_at_most_fifty_tags_with_floodgates_own(prod_config) -> None:
    """Catches `total >= 50` (a stack with exactly 50 tags refused) and a count that forgets
    Floodgate's own two tags (floodgate:environment and ManagedBy)."""
    own = {"floodgate:environment", "ManagedBy"}
    fifty = {f"team-{i}": "x" for i in range(AWS_TAGS_PER_RESOURCE - len(own))}
    assert len(settings_with(prod_config, tags=fifty).stack_tags) == 50
    with pytest.raises(SettingsError, match="would carry 51 tags; AWS allows 50"):
        settings_with(prod_config, tags={**fifty, "one-more": "x"})


def test_tag_keys_and_values_are_accepted_up_to_awss_lengths(prod_config) -> None:
    """Catches an off-by-one in the tag key (128) or value (256) length check."""
    settings_with(prod_config, tags={"k" * 128: "v" * 256})
    for tags in ({"k" * 129: "v"}, {"k": "v" * 257}, {"": "v"}):
        with pytest.raises(SettingsError, match="keys are 1-128 characters"):
            settings_with(prod_config, tags=tags)


def test_reserved_concurrency_may_use_all_but_lambdas_100_unreserved(prod_config) -> None:
    """Catches `reserved >= most`: Lambda's default 1,000 concurrent executions a Region less
    the 100 that must stay unreserved (Lambda developer guide, "Configuring reserved
    concurrency", https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html:
    "You can reserve up to the Unreserved account concurrency value minus 100") leaves 900:
    prod's join 142 + status 755 + inlet 1 + admin 2 is exactly 900."""
    settings_with(prod_config, admission__status_concurrency=755)
    with pytest.raises(SettingsError, match=r"reserved concurrency \(901\) must fit in 900"):
        settings_with(prod_config, admission__status_concurrency=756)
