"""Web fleet: private IMDSv2 instances, ELB health checks, scaling that Pulumi never fights."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pytest

from components.web_fleet import (
    RUNTIME_MANAGED,
    DemandMetric,
    WebFleet,
    WebFleetArgs,
    user_data,
)
from planning.settings import Settings
from tests.helpers import settings_with


def build(
    evaluate,
    settings: Settings,
    warm_pool_min_size: int | None = None,
    demand: DemandMetric | None = None,
):
    def program() -> None:
        attached = aws.lb.ListenerRule(
            "forward", listener_arn="arn:listener", actions=[], conditions=[]
        )
        WebFleet(
            "web",
            WebFleetArgs(
                settings=settings.fleet,
                load_balancer=settings.load_balancer,
                vpc_id="vpc-1",
                private_subnet_ids=[pulumi.Output.from_input(f"subnet-{i}") for i in range(3)],
                alb_security_group_id="sg-alb",
                target_group_arn="arn:tg",
                target_group_attached=attached,
                request_count_label="app/lb/1/targetgroup/tg/2",
                warm_pool_min_size=warm_pool_min_size,
                demand_metric=demand,
                tags={"team": "portal"},
            ),
        )

    return evaluate(program)


def test_instances_require_imdsv2_and_get_no_public_ip(evaluate, prod) -> None:
    template = build(evaluate, prod).one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert template["metadataOptions"]["httpTokens"] == "required"
    assert template["metadataOptions"]["httpPutResponseHopLimit"] == 1
    (nic,) = template["networkInterfaces"]
    assert nic["associatePublicIpAddress"] == "false"


def test_root_volume_is_encrypted_gp3(evaluate, prod) -> None:
    template = build(evaluate, prod).one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    (disk,) = template["blockDeviceMappings"]
    assert disk["ebs"]["volumeType"] == "gp3"
    assert disk["ebs"]["encrypted"] == "true"


def test_ami_is_the_one_pinned_in_the_stack(evaluate, prod, prod_config) -> None:
    template = build(evaluate, prod).one("aws:ec2/launchTemplate:LaunchTemplate")
    assert template.inputs["imageId"] == prod.fleet.ami_id
    bumped = settings_with(prod_config, fleet__ami_id="ami-0123456789abcdef0")
    template = build(evaluate, bumped).one("aws:ec2/launchTemplate:LaunchTemplate")
    assert template.inputs["imageId"] == "ami-0123456789abcdef0"


def app_script(template: dict) -> str:
    """The application's bootstrap, as Floodgate's bootstrap carries it (base64)."""
    script = base64.b64decode(template["userData"]).decode()
    (encoded,) = re.findall(r"echo '([A-Za-z0-9+/=]+)' \| base64 -d", script)
    return base64.b64decode(encoded).decode()


def test_default_user_data_serves_the_health_check(evaluate, prod) -> None:
    template = build(evaluate, prod).one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    script = app_script(template)
    assert "/srv/portal/healthz" in script
    assert "http.server 8080" in script
    assert "systemctl enable --now portal.service" in script, "started again on every boot"
    assert "$" not in script.replace("$(", ""), "every template placeholder is filled"


def test_custom_user_data_runs_inside_floodgates_bootstrap(evaluate, prod_config) -> None:
    settings = settings_with(prod_config, fleet__user_data="#!/bin/bash\necho portal\n")
    template = build(evaluate, settings).one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    assert app_script(template) == "#!/bin/bash\necho portal\n"
    wrapper = base64.b64decode(template["userData"]).decode()
    assert "/opt/floodgate/app-bootstrap.sh\nsystemctl daemon-reload" in wrapper
    assert "--lifecycle-hook-name floodgate-bootstrap" in wrapper
    assert "http://127.0.0.1:8080/healthz" in wrapper


def test_the_bootstrap_passes_shellcheck(prod) -> None:
    """The rendered script, and the ready script it writes, as bash would run them."""
    script = user_data(prod.fleet, prod.load_balancer)
    ready = script.split("<<'READY'\n", 1)[1].split("\nREADY\n", 1)[0]
    for text in (script, ready):
        done = subprocess.run(
            [str(Path(sys.executable).parent / "shellcheck"), "-s", "bash", "-"],
            input=text, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout


def run_ready(prod, tmp_path, state: str, describe_fails: int = 0) -> list[str]:
    """Run the ready script once with stand-ins for curl (instance metadata and the health
    check) and the AWS CLI (which fails its first `describe_fails` calls, as it does before
    the role's policy has propagated); returns the AWS CLI calls it made."""
    script = user_data(prod.fleet, prod.load_balancer)
    ready = tmp_path / "ready.sh"
    ready.write_text(script.split("<<'READY'\n", 1)[1].split("\nREADY\n", 1)[0])
    bin_dir, calls, count = tmp_path / "bin", tmp_path / "calls", tmp_path / "count"
    bin_dir.mkdir()
    count.write_text("0")
    stubs = {
        "curl": 'case "$*" in *api/token*) echo token;; *instance-id) echo i-0abc;; '
        "*placement/region) echo ca-central-1;; *target-lifecycle-state*) echo InService;; "
        "*healthz*) echo ok;; esac",
        "aws": f'echo "$*" >> {calls}; n=$(($(cat {count}) + 1)); echo $n > {count}; '
        f'[ $n -le {describe_fails} ] && exit 255; case "$*" in *AutoScalingGroupName*) '
        f"echo web-asg;; *LifecycleState*) echo {state};; esac",
        "sleep": "exit 0",
    }
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    done = subprocess.run(["bash", str(ready), "once"], env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=20, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return calls.read_text().splitlines()


@pytest.mark.parametrize(
    ("state", "completes"), [("Warmed:Pending:Wait", True), ("Pending:Wait", True),
                             ("InService", False), ("Warmed:Running", False)],
)  # fmt: skip
def test_the_ready_script_releases_the_hook_only_when_aws_holds_the_instance(
    prod, tmp_path, state, completes
) -> None:
    """Into the pool or into service it completes the hook with CONTINUE, after the health
    check answers; with nothing held (a reboot in service, a pool instance waiting) it
    releases nothing."""
    completed = [c for c in run_ready(prod, tmp_path, state) if "complete-lifecycle-action" in c]
    if completes:
        (call,) = completed
        assert "--lifecycle-hook-name floodgate-bootstrap" in call
        assert "--auto-scaling-group-name web-asg --instance-id i-0abc" in call
        assert "--lifecycle-action-result CONTINUE" in call
    else:
        assert not completed


def test_the_ready_script_retries_what_the_aws_cli_refuses(prod, tmp_path) -> None:
    """Describe refused twice (a policy still propagating): it asks again, then releases."""
    calls = run_ready(prod, tmp_path, "Pending:Wait", describe_fails=2)
    assert sum("describe-auto-scaling-instances" in c for c in calls) >= 3
    assert any("complete-lifecycle-action" in c for c in calls)


def test_every_launch_waits_for_its_bootstrap(evaluate, prod) -> None:
    """AWS stops a warm-pool instance as soon as it launches, without waiting for user data;
    the launch hook holds it (and every launch into service) until the bootstrap is done, and
    abandons one that never is. On a new group from its first launch, on an old one too."""
    run = build(evaluate, prod)
    (hook,) = run.one("aws:autoscaling/group:Group").inputs["initialLifecycleHooks"]
    assert hook == {
        "name": "floodgate-bootstrap",
        "lifecycleTransition": "autoscaling:EC2_INSTANCE_LAUNCHING",
        "heartbeatTimeout": prod.fleet.launch_hook_timeout_s,
        "defaultResult": "ABANDON",
    }
    alone = run.one("aws:autoscaling/lifecycleHook:LifecycleHook").inputs
    assert {k: alone[k] for k in hook} == hook
    (policy,) = run.of_type("aws:iam/rolePolicy:RolePolicy")
    statements = json.loads(policy.inputs["policy"])["Statement"]
    (release,) = [
        st for st in statements if st["Action"] == ["autoscaling:CompleteLifecycleAction"]
    ]
    # By the group's tag: the policy exists before the group, whose first launches use it.
    assert release["Condition"] == {
        "StringEquals": {"autoscaling:ResourceTag/floodgate:fleet": "web"}
    }
    group = run.one("aws:autoscaling/group:Group")
    assert {"key": "floodgate:fleet", "value": "web", "propagateAtLaunch": False} in group.inputs[
        "tags"
    ]
    assert policy.urn in group.dependencies


def test_instances_accept_traffic_only_from_the_alb(evaluate, prod) -> None:
    group = build(evaluate, prod).one("aws:ec2/securityGroup:SecurityGroup").inputs
    (rule,) = group["ingress"]
    assert rule["securityGroups"] == ["sg-alb"]
    assert not rule.get("cidrBlocks")
    assert rule["fromPort"] == prod.load_balancer.app_port


def test_instance_role_has_ssm_and_its_own_launch_hook_only(evaluate, prod) -> None:
    run = build(evaluate, prod)
    (attachment,) = run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert attachment.inputs["policyArn"].endswith("/AmazonSSMManagedInstanceCore")
    (policy,) = run.of_type("aws:iam/rolePolicy:RolePolicy")
    actions = {a for st in json.loads(policy.inputs["policy"])["Statement"] for a in st["Action"]}
    assert actions == {
        "autoscaling:CompleteLifecycleAction",
        "autoscaling:DescribeAutoScalingInstances",
    }


def test_group_uses_elb_health_checks_and_never_fights_scaling(evaluate, prod) -> None:
    group = build(evaluate, prod).one("aws:autoscaling/group:Group")
    assert group.inputs["healthCheckType"] == "ELB"
    assert group.ignore_changes == (*RUNTIME_MANAGED, "initialLifecycleHooks")
    assert set(RUNTIME_MANAGED) == {"desiredCapacity", "minSize", "maxSize", "warmPool"}
    assert group.inputs["vpcZoneIdentifiers"] == ["subnet-0", "subnet-1", "subnet-2"]
    assert group.inputs["instanceMaintenancePolicy"]["minHealthyPercentage"] == 100
    assert group.inputs["defaultInstanceWarmup"] == prod.fleet.default_warmup_s


def test_template_changes_start_an_instance_refresh(evaluate, prod) -> None:
    group = build(evaluate, prod).one("aws:autoscaling/group:Group").inputs
    assert group["launchTemplate"]["version"] == "1", "pinned latest_version, not $Latest"
    assert group["instanceRefresh"]["strategy"] == "Rolling"
    # terraform-provider-aws #34189: the group already points at the new version, so an
    # automatic rollback would roll "back" to it; checkpoints let an operator stop instead.
    assert "autoRollback" not in group["instanceRefresh"]["preferences"]
    assert group["instanceRefresh"]["preferences"]["checkpointPercentages"][-1] == 100


def test_warm_pool_holds_its_size_not_max_minus_desired(evaluate, prod) -> None:
    """Without MaxGroupPreparedCapacity AWS keeps max - desired (120 - 6 = 114) prepared."""
    pool = build(evaluate, prod).one("aws:autoscaling/group:Group").inputs["warmPool"]
    assert pool["maxGroupPreparedCapacity"] == prod.fleet.min_size + pool["minSize"] == 18


def test_a_planned_empty_warm_pool_stays_empty(evaluate, prod) -> None:
    pool = build(evaluate, prod, warm_pool_min_size=0).one("aws:autoscaling/group:Group")
    assert pool.inputs["warmPool"]["minSize"] == 0
    assert pool.inputs["warmPool"]["maxGroupPreparedCapacity"] == prod.fleet.min_size


def test_request_scaling_waits_for_the_target_group_to_be_attached(evaluate, prod) -> None:
    run = build(evaluate, prod)
    rule = run.one("aws:lb/listenerRule:ListenerRule")
    (requests,) = [p for p in run.of_type("aws:autoscaling/policy:Policy") if "requests" in p.name]
    assert rule.urn in requests.dependencies


def test_prod_keeps_a_warm_pool_of_stopped_instances(evaluate, prod) -> None:
    group = build(evaluate, prod).one("aws:autoscaling/group:Group").inputs
    assert group["warmPool"]["minSize"] == 12
    assert group["warmPool"]["poolState"] == "Stopped"
    assert "mixedInstancesPolicy" not in group


def test_dev_mixes_types_with_an_on_demand_base_and_spot(evaluate, dev) -> None:
    group = build(evaluate, dev).one("aws:autoscaling/group:Group").inputs
    policy = group["mixedInstancesPolicy"]
    assert [o["instanceType"] for o in policy["launchTemplate"]["overrides"]] == [
        "t3.medium",
        "t3a.medium",
    ]
    assert policy["launchTemplate"]["launchTemplateSpecification"]["version"] == "1"
    assert policy["instancesDistribution"]["onDemandBaseCapacity"] == 1
    assert policy["instancesDistribution"]["onDemandPercentageAboveBaseCapacity"] == 0
    assert group["capacityRebalance"] is True
    assert "warmPool" not in group


def test_scales_on_requests_per_target_and_cpu(evaluate, prod) -> None:
    policies = build(evaluate, prod).of_type("aws:autoscaling/policy:Policy")
    tracking = {
        p.inputs["targetTrackingConfiguration"]["predefinedMetricSpecification"][
            "predefinedMetricType"
        ]: p.inputs["targetTrackingConfiguration"]
        for p in policies
    }
    assert tracking["ALBRequestCountPerTarget"]["targetValue"] == 6000
    assert (
        tracking["ALBRequestCountPerTarget"]["predefinedMetricSpecification"]["resourceLabel"]
        == "app/lb/1/targetgroup/tg/2"
    )
    assert tracking["ASGAverageCPUUtilization"]["targetValue"] == 50


def test_the_fleet_grows_for_the_people_waiting(evaluate, prod) -> None:
    demand = DemandMetric(
        namespace="Floodgate/WaitingRoom", name="DemandPercent", room_id="r", period_s=10
    )
    policies = build(evaluate, prod, demand=demand).of_type("aws:autoscaling/policy:Policy")
    (room,) = [p for p in policies if p.name == "web-room-demand"]
    tracking = room.inputs["targetTrackingConfiguration"]
    assert tracking["customizedMetricSpecification"] == {
        "namespace": "Floodgate/WaitingRoom",
        "metricName": "DemandPercent",
        "metricDimensions": [{"name": "Room", "value": "r"}],
        "statistic": "Average",
        "unit": "Percent",
        "period": 10,  # high resolution: the inlet publishes it every 10-second step
    }
    # The same utilisation target as requests: 6,000 a minute of 150 req/s is 66.67 %.
    assert tracking["targetValue"] == 66.67
    assert "disableScaleIn" not in tracking or tracking["disableScaleIn"] is False
    none = build(evaluate, prod).of_type("aws:autoscaling/policy:Policy")
    assert [p.name for p in none if p.name.endswith("room-demand")] == []


def test_the_group_is_sized_and_timed_as_the_stack_says(evaluate, prod) -> None:
    """Catches a wrong settings field wired to the group: prod's file says min 6, max 120,
    health-check grace 180 s, warm-up 120 s; a new group starts at its min, not its max."""
    group = build(evaluate, prod).one("aws:autoscaling/group:Group").inputs
    assert (group["minSize"], group["desiredCapacity"], group["maxSize"]) == (6, 6, 120)
    assert (group["healthCheckGracePeriod"], group["defaultInstanceWarmup"]) == (180, 120)


def test_a_refresh_never_takes_an_instance_out_before_its_replacement(evaluate, prod) -> None:
    """Catches an instance refresh allowed below 100 % healthy: mid-event it would terminate
    serving instances first and shrink the fleet while it rolls."""
    group = build(evaluate, prod).one("aws:autoscaling/group:Group").inputs
    preferences = group["instanceRefresh"]["preferences"]
    assert (preferences["minHealthyPercentage"], preferences["maxHealthyPercentage"]) == (100, 200)
    assert preferences["skipMatching"] is True
    maintenance = group["instanceMaintenancePolicy"]
    assert (maintenance["minHealthyPercentage"], maintenance["maxHealthyPercentage"]) == (100, 200)


def test_instances_reach_out_on_https_only(evaluate, prod) -> None:
    """Catches an egress rule opened to every port and protocol."""
    group = build(evaluate, prod).one("aws:ec2/securityGroup:SecurityGroup").inputs
    (rule,) = group["egress"]
    assert (rule["protocol"], rule["fromPort"], rule["toPort"]) == ("tcp", 443, 443)


EC2_USER_DATA_LIMIT = 16_384
"""EC2: "User data is limited to 16 KB, in raw form, before it is base64-encoded" (Amazon EC2
User Guide, "Work with instance user data",
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-add-user-data.html)."""


def test_user_data_of_exactly_16_kb_is_accepted_and_one_byte_more_is_not(prod) -> None:
    """Catches the limit checked with >= (a script of exactly 16,384 bytes refused) or past it."""
    # The app's script rides base64-encoded (4 bytes per 3), so the total moves in steps of 4:
    # the port's digits (it appears once) shift the rest until 16,384 is reachable.
    for port in (80, 808, 8080, 10080):
        load_balancer = prod.load_balancer.model_copy(update={"app_port": port})
        fleet = prod.fleet.model_copy(update={"user_data": ""})
        rest = len(user_data(fleet, load_balancer).encode())
        if (EC2_USER_DATA_LIMIT - rest) % 4 == 0:
            break
    else:
        raise AssertionError("no port makes 16,384 bytes reachable")
    fits = (EC2_USER_DATA_LIMIT - rest) // 4 * 3
    at_limit = prod.fleet.model_copy(update={"user_data": "#" * fits})
    assert len(user_data(at_limit, load_balancer).encode()) == EC2_USER_DATA_LIMIT
    over = prod.fleet.model_copy(update={"user_data": "#" * (fits + 1)})
    with pytest.raises(ValueError, match="16,388 bytes"):
        user_data(over, load_balancer)
