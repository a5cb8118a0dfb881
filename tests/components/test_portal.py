"""Portal: composes the request path and exports what operators and scripts need."""

from __future__ import annotations

from datetime import UTC, datetime

import pulumi
import pytest

from components.portal import Portal

NOW = datetime(2026, 11, 21, tzinfo=UTC)

EXPECTED_OUTPUTS = {
    "cdn_domain_name",
    "distribution_id",
    "web_acl_arn",
    "alb_dns_name",
    "alb_arn",
    "target_group_arn",
    "asg_name",
    "alarm_topic_arn",
    "edge_alarm_topic_arn",
    "pages_bucket",
    "vpc_id",
    "scheduled_actions",
    "prescale_schedule",
    "prescale_dlq_url",
    "prescale_function",
    "room_table",
    "room_admin_function",
    "room_kvs_arn",
    "queue_api",
    "inbox_queue_url",
    "inbox_dlq_url",
    "inbox_table",
    "inbox_uploads",
    "inbox_api",
    "inbox_consumer",
}


@pulumi.runtime.test
def test_portal_exports_what_scripts_need(pulumi_mocks, prod):
    portal = Portal("p", prod, [], NOW, require_layer=False)
    assert set(portal.outputs) == EXPECTED_OUTPUTS

    def check(values: list) -> None:
        outputs = dict(zip(portal.outputs, values, strict=True))
        assert outputs["cdn_domain_name"].endswith(".cloudfront.net")
        assert outputs["alb_dns_name"].endswith(".elb.amazonaws.com")
        assert outputs["alb_arn"].startswith("arn:aws:elasticloadbalancing:ca-central-1:")
        assert outputs["asg_name"].startswith("p-")
        assert all(v for k, v in outputs.items() if k != "scheduled_actions")
        assert outputs["scheduled_actions"] == []

    return pulumi.Output.all(*portal.outputs.values()).apply(check)


@pulumi.runtime.test
def test_origin_secret_never_leaves_state_in_plain_text(pulumi_mocks, prod):
    portal = Portal("p", prod, [], NOW, require_layer=False)
    secret_flags = [pulumi.Output.is_secret(v) for v in portal.outputs.values()]

    def check(flags: list[bool]) -> None:
        assert not any(flags), "no exported output carries the origin secret"

    return pulumi.Output.all(*[pulumi.Output.from_input(f) for f in secret_flags]).apply(check)


def test_a_real_preview_without_the_layer_stops_saying_how_to_build_it(
    pulumi_mocks, prod, tmp_path, monkeypatch
) -> None:
    """The awscrt layer is uploaded by a real preview or update: missing, the program stops
    before declaring anything, naming `make layer`. The offline plan passes require_layer=False
    (the program reads FLOODGATE_OFFLINE; components read no environment)."""
    monkeypatch.setattr("components.admission.LAYER_DIR", tmp_path / "missing")
    with pytest.raises(RuntimeError, match=r"run `make layer` before `pulumi preview`"):
        Portal("p", prod, [], NOW)
