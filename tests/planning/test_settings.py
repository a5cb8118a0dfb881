"""Settings: every stack parses, and bad input fails naming the key, the value and the rule."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from planning.settings import (
    SettingsError,
    architecture,
    load_stack_settings,
    parse_stack_config,
)
from tests.helpers import STACKS, settings_with, stack_config, with_setting


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_file_is_valid(stack: str) -> None:
    assert load_stack_settings(stack).environment == stack


def test_the_four_stacks_exist() -> None:
    assert set(STACKS) == {"dev", "staging", "prod", "pr"}


def test_prod_is_three_zones_in_ca_central_1(prod) -> None:
    assert prod.region == "ca-central-1"
    assert len(prod.network.zones) == 3
    assert prod.network.nat_gateways == "per_zone"


def test_dev_is_cheap(dev) -> None:
    assert len(dev.network.zones) == 2
    assert dev.network.nat_gateways == "one"
    assert dev.fleet.max_size <= 4


def test_defaults_fill_what_a_stack_leaves_out(prod_config) -> None:
    del prod_config["floodgate:settings"]["waf"]
    settings = parse_stack_config(prod_config)
    assert settings.waf.rate_limit == 2000
    assert settings.waf.evaluation_window_s == 300


def test_yaml_and_config_object_paths_agree(prod_config) -> None:
    """`__main__` gets the settings as Pulumi config (JSON text decoded to a dict); scripts read
    the YAML file. Both must give the same model."""
    import json

    from_config = parse_stack_config(
        {
            "aws:region": prod_config["aws:region"],
            "floodgate:settings": json.loads(json.dumps(prod_config["floodgate:settings"])),
        }
    )
    assert from_config == load_stack_settings("prod")


def test_missing_stack_file_lists_known_stacks() -> None:
    with pytest.raises(SettingsError, match=r"stack 'nope'.*stacks: dev, pr, prod, staging"):
        load_stack_settings("nope")


def test_missing_settings_key_is_reported(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.x.yaml").write_text(yaml.safe_dump({"config": {"aws:region": "x"}}))
    with pytest.raises(SettingsError, match="floodgate:settings: missing or not a mapping"):
        load_stack_settings("x", tmp_path)


# Each case: dotted key, bad value, pattern the message must contain (key, value and rule).
INVALID: list[tuple[str, Any, str]] = [
    ("fleet.max_size", 2, r"fleet\.max_size: must be >= min_size \(6\) \(got 2\)"),
    (
        "network.zones",
        ["ca-central-1a", "ca-central-1b", "ca-central-1z"],
        r"network\.zones: 'ca-central-1z' is not an Availability Zone of ca-central-1",
    ),
    (
        "network.zones",
        ["ca-central-1a", "ca-central-1b", "us-east-1a"],
        r"network\.zones: 'us-east-1a' is not an Availability Zone of ca-central-1; allowed: "
        r"\['ca-central-1a', 'ca-central-1b', 'ca-central-1d'\]",
    ),
    (
        "fleet.instance_types",
        [],
        r"fleet\.instance_types: must list at least one instance type.*\(got \[\]\)",
    ),
    (
        "fleet.warm_pool.min_size",
        500,
        r"fleet\.warm_pool\.min_size: must be <= max_size \(120\) \(got 500\)",
    ),
    (
        "waf.rate_limit",
        5,
        r"waf\.rate_limit: must be between 10 and 2000000000 requests per window "
        r"\(AWS WAF minimum is 10\) \(got 5\)",
    ),
    (
        "load_balancer.tls_policy",
        "ELBSecurityPolicy-2016-08",
        r"load_balancer\.tls_policy: must be one of ELBSecurityPolicy-TLS13-1-2-2021-06.*"
        r"\(got 'ELBSecurityPolicy-2016-08'\)",
    ),
    (
        "edge.certificate_arn",
        "arn:aws:acm:ca-central-1:123456789012:certificate/66666666-7777-8888-9999-000000000000",
        r"edge\.certificate_arn: is in ca-central-1; CloudFront only uses certificates from "
        r"us-east-1",
    ),
    (
        "load_balancer.certificate_arn",
        "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555",
        r"load_balancer\.certificate_arn: must be in the stack's region ca-central-1",
    ),
    (
        "fleet.instance_types",
        ["m7i.large", "m7g.large"],
        r"fleet\.instance_types: mixes arm64 \(Graviton\) and x86_64",
    ),
    (
        "fleet.instance_types",
        ["m7i.large", "m6i.large"],
        r"fleet\.warm_pool: needs exactly one instance type.*mixed instances policy",
    ),
    ("fleet.spot_pct", 30, r"fleet\.warm_pool: needs spot_pct 0, got 30.*Spot Instances"),
    (
        "edge.origin_shield_region",
        "eu-west-1",
        r"edge\.origin_shield_region: must be us-east-1, the Origin Shield Region AWS recommends "
        r"for ca-central-1 \(got 'eu-west-1'\)",
    ),
    (
        "edge.origin_shield_region",
        "ca-central-1",
        r"edge\.origin_shield_region: must be one of \['us-east-2', 'us-east-1'",
    ),
    (
        "edge.public_page_patterns",
        ["/queue/*"],
        r"edge\.public_page_patterns: .*'/queue/\*': must start with / and not be one of the "
        r"room's paths",
    ),
    (
        "edge.public_page_patterns",
        ["/api/*"],
        r"edge\.public_page_patterns: are also write or static paths",
    ),
    (
        "capacity.public_page_ttl_s",
        600,
        r"capacity\.public_page_ttl_s: must be <= edge\.public_page_max_ttl_s \(300\)",
    ),
    (
        "admission.api_certificate_arn",
        "arn:aws:acm:us-east-1:123456789012:certificate/11111111-2222-3333-4444-555555555555",
        r"admission\.api_certificate_arn: must be an ACM certificate ARN in the stack's region "
        r"ca-central-1",
    ),
    (
        "load_balancer.hosted_zone_id",
        None,
        r"admission\.api_domain_name: needs load_balancer\.hosted_zone_id",
    ),
    (
        "admission.api_domain_name",
        "Not A Domain",
        r"admission\.api_domain_name: must be a lower-case DNS name .*\(got .Not A Domain.\)",
    ),
    (
        "capacity.public_page_pct",
        45,
        r"capacity\.public_page_pct: with cdn_offload_pct 60 must leave some requests",
    ),
    (
        "edge.failover_status_codes",
        [500, 501],
        r"edge\.failover_status_codes: must be a non-empty subset of "
        r"\[500, 502, 503, 504\] \(got \[500, 501\]\)",
    ),
    (
        "edge.origin_connection_timeout_s",
        30,
        r"edge\.origin_connection_timeout_s: must be between 1 and 10 seconds \(got 30\)",
    ),
    (
        "waf.evaluation_window_s",
        90,
        r"waf\.evaluation_window_s: must be one of \[60, 120, 300, 600\] seconds \(got 90\)",
    ),
    (
        "network.flow_log_retention_days",
        100,
        r"network\.flow_log_retention_days: must be one of CloudWatch's retention periods",
    ),
    (
        "network.vpc_cidr",
        "8.8.0.0/16",
        r"network\.vpc_cidr: must lie in a private \(RFC 1918\) range",
    ),
    ("network.nat_gateways", "one", r"network\.nat_gateways: prod needs 'per_zone'"),
    (
        "network.zones",
        ["ca-central-1a", "ca-central-1b"],
        r"network\.zones: prod needs at least 3 zones",
    ),
    ("fleet.instance_types", ["large"], r"fleet\.instance_types: \['large'\] are not instance"),
    ("fleet.colour", "blue", r"fleet\.colour: Extra inputs are not permitted \(got 'blue'\)"),
    (
        "alarms.response_time_p99_s",
        0.5,
        r"alarms\.response_time_p99_s: must be >= response_time_p95_s \(1\.0\) \(got 0\.5\)",
    ),
    ("fleet.ami_id", "ubuntu", r"fleet\.ami_id: must look like ami-0123456789abcdef0"),
    (
        "load_balancer.slow_start_s",
        60,
        r"load_balancer\.slow_start_s: must be 0 with load_balancing_algorithm "
        r"least_outstanding_requests: AWS cannot enable both",
    ),
    (
        "edge.log_group_retention_days",
        100,
        r"edge\.log_group_retention_days: must be one of CloudWatch",
    ),
    (
        "edge.log_retention_days",
        30,
        r"edge\.log_retention_days: renamed: set "
        r"access_log_expiry_days \(S3\) and log_group_retention_days \(CloudWatch Logs\) instead "
        r"\(got 30\)",
    ),
    (
        "load_balancer.access_log_retention_days",
        30,
        r"load_balancer\.access_log_retention_days: renamed: set access_log_expiry_days instead",
    ),
    ("admission.table_quota_units_per_s", 100, r"admission\.table_quota_units_per_s: .*greater"),
    ("tags", {"aws:owner": "x"}, r"tags: tag 'aws:owner': keys are 1-128 characters"),
    (
        "admission.open_below_load_pct",
        90,
        r"admission\.open_below_load_pct: must be below queue_at_load_pct \(85\) or the room "
        r"flaps \(got 90\)",
    ),
    ("admission.step_s", 7, r"admission\.step_s: Input should be 5, 6, 10, 12, 15, 20, 30 or 60"),
    ("admission.room_id", "our room", r"admission\.room_id: String should match pattern"),
    ("admission.max_admit_per_s", 5000, r"admission\.max_admit_per_s: .*less than or equal"),
    (
        "prescale.stage_minutes",
        10,
        r"prescale\.stage_minutes: Input should be greater than or equal to 15 \(got 10\)",
    ),
    (
        "prescale.alb_reservation_lead_s",
        600,
        r"prescale\.alb_reservation_lead_s: Input should be greater than or equal to 3600",
    ),
    ("prescale.lcu_margin_pct", -5, r"prescale\.lcu_margin_pct: Input should be greater"),
    (
        "prescale.warm_launch_s",
        400,
        r"prescale\.warm_launch_s: must be <= cold_launch_s \(300\): a warm instance skips the "
        r"bootstrap a cold one runs \(got 400\)",
    ),
    (
        "prescale.cold_launch_s",
        1200,
        r"prescale\.cold_launch_s: must be <= fleet\.launch_hook_timeout_s \(900\): the launch "
        r"hook abandons",
    ),
    (
        "fleet.launch_hook_timeout_s",
        10,
        r"fleet\.launch_hook_timeout_s: Input should be greater than or equal to 30 \(got 10\)",
    ),
    ("prescale.run_every_minutes", 0, r"prescale\.run_every_minutes: Input should be greater"),
    ("prescale.create_ahead_s", 60, r"prescale\.create_ahead_s: Input should be greater"),
    (
        "fleet.user_data",
        "#cloud-config\npackages: [nginx]\n",
        r"fleet\.user_data: must be a script starting with #! \(e\.g\. #!/bin/bash\)",
    ),
    (
        "fleet.user_data",
        "#!/bin/bash\n" + "x" * 10_000,
        r"fleet\.user_data: is 10,012 bytes; at most 10,000 fit in EC2's 16 KB",
    ),
    (
        "admission.log_group_retention_days",
        10,
        r"admission\.log_group_retention_days: must be one of",
    ),
    (
        "admission.log_retention_days",
        30,
        r"admission\.log_retention_days: renamed: set log_group_retention_days instead",
    ),
    (
        "admission.status_concurrency",
        900,
        r"admission\.status_concurrency: join \(142\) \+ status \+ inlet \+ admin reserved "
        r"concurrency \(1045\) must fit in 900",
    ),
    (
        "admission.join_concurrency",
        100,
        r"admission\.join_concurrency: must be at least 142: the planned crowd needs 2,833 "
        r"requests/s",
    ),
    (
        "admission.api_rate_limit",
        5000,
        r"admission\.api_rate_limit: must be at least 8,500 requests/s: the planned crowd's "
        r"joins \(2,833/s\) and polls \(5,667/s\)",
    ),
]


@pytest.mark.parametrize(("key", "value", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_setting_names_key_value_and_rule(prod_config, key, value, message) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_with(prod_config, **{key.replace(".", "__"): value})
    assert re.search(message, str(caught.value)), str(caught.value)


def test_the_ami_is_pinned_in_every_stack(prod_config) -> None:
    """An AMI looked up on every run would roll the fleet on any `pulumi up`."""
    del prod_config["floodgate:settings"]["fleet"]["ami_id"]
    with pytest.raises(SettingsError, match=r"fleet\.ami_id: Field required"):
        parse_stack_config(prod_config)


def test_slow_start_is_allowed_with_round_robin(prod_config) -> None:
    settings = settings_with(
        prod_config,
        load_balancer__load_balancing_algorithm="round_robin",
        load_balancer__slow_start_s=60,
    )
    assert settings.load_balancer.slow_start_s == 60


def test_custom_domain_requires_a_certificate(prod_config) -> None:
    del prod_config["floodgate:settings"]["edge"]["certificate_arn"]
    with pytest.raises(SettingsError, match=r"edge\.certificate_arn: is required when domain"):
        parse_stack_config(prod_config)


def test_region_comes_from_aws_region_only(prod_config) -> None:
    with_setting(prod_config, "region", "ca-central-1")
    with pytest.raises(SettingsError, match="set the region with aws:region instead"):
        parse_stack_config(prod_config)


def test_unknown_region_lists_supported_ones(prod_config) -> None:
    prod_config["aws:region"] = "mars-north-1"
    with pytest.raises(SettingsError, match=r"region: must be one of \[.*'ca-central-1'"):
        parse_stack_config(prod_config)


def test_every_problem_is_reported_at_once(prod_config) -> None:
    with_setting(prod_config, "waf.rate_limit", 1)
    with_setting(prod_config, "edge.origin_read_timeout_s", 0)
    with pytest.raises(SettingsError) as caught:
        parse_stack_config(prod_config)
    assert "waf.rate_limit" in str(caught.value)
    assert "edge.origin_read_timeout_s" in str(caught.value)


@pytest.mark.parametrize(
    ("instance_type", "arch"),
    [
        ("m7g.large", "arm64"),
        ("c7gn.xlarge", "arm64"),
        ("t4g.small", "arm64"),
        ("m7i.large", "x86_64"),
        ("t3a.medium", "x86_64"),
        ("g5.xlarge", "x86_64"),
    ],
)
def test_architecture_follows_the_family_name(instance_type: str, arch: str) -> None:
    assert architecture(instance_type) == arch


def test_public_pages_the_plan_counts_on_must_be_ones_the_edge_caches(prod_config) -> None:
    with pytest.raises(
        SettingsError, match=r"capacity\.public_page_pct: needs edge\.public_page_patterns"
    ):
        settings_with(prod_config, edge__public_page_patterns=[], capacity__public_page_pct=10)


def test_a_sessions_absolute_life_of_exactly_three_visits_is_allowed() -> None:
    """The boundary of session_max_minutes >= 3 x session_minutes holds on its allowed side."""
    settings = settings_with(
        stack_config("prod"), admission__session_minutes=20, admission__session_max_minutes=60
    )
    assert settings.admission.session_max_minutes == 60
