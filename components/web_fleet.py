"""Web fleet: launch template and autoscaling group behind the ALB target group."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam
from components.service_role import service_role
from planning.settings import FleetSettings, LoadBalancerSettings

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "functions/instance"
DEFAULT_USER_DATA = INSTANCE_DIR / "user_data.sh"
BOOTSTRAP = INSTANCE_DIR / "bootstrap.sh"
LAUNCH_HOOK = "floodgate-bootstrap"
"""The launch lifecycle hook that holds each new instance until its bootstrap has finished
(functions/instance/bootstrap.sh completes it)."""
FLEET_TAG = "floodgate:fleet"
"""The group's tag its instances' role is conditioned on (the component's name)."""
USER_DATA_LIMIT_BYTES = 16 * 1024
"""EC2 takes at most 16 KB of user data, before base64 (EC2 user guide, instance user data)."""

RUNTIME_MANAGED = ["desiredCapacity", "minSize", "maxSize", "warmPool"]
"""Group values that scheduled actions, scaling and the pre-scale runner change at run time."""
CREATE_ONLY = ["initialLifecycleHooks"]
"""Group values that matter at creation only: the provider replaces a group whose initial hooks
change (ForceNew), so an existing group gets the hook from its own LifecycleHook resource."""

# Group metrics the alarms and dashboard read (1-minute granularity, no extra charge).
_M = aws.autoscaling.Metric
GROUP_METRICS = [
    _M.GROUP_MIN_SIZE,
    _M.GROUP_MAX_SIZE,
    _M.GROUP_DESIRED_CAPACITY,
    _M.GROUP_IN_SERVICE_INSTANCES,
    _M.GROUP_PENDING_INSTANCES,
    _M.GROUP_TOTAL_INSTANCES,
    _M.WARM_POOL_WARMED_CAPACITY,
    _M.WARM_POOL_PENDING_CAPACITY,
]


@dataclass(frozen=True, kw_only=True)
class DemandMetric:
    """The waiting room's demand (people inside and waiting, as % of what the in-service
    instances serve), published by the inlet every step; a third target tracking policy scales
    the group on it so that the fleet grows for the people waiting."""

    namespace: str
    name: str
    room_id: str
    period_s: int = 60
    """The policy's period: 10 or 30 for the high-resolution metric the inlet publishes."""


@dataclass(frozen=True, kw_only=True)
class WebFleetArgs:
    settings: FleetSettings
    load_balancer: LoadBalancerSettings
    vpc_id: pulumi.Input[str]
    private_subnet_ids: list[pulumi.Output[str]]
    alb_security_group_id: pulumi.Input[str]
    target_group_arn: pulumi.Input[str]
    target_group_attached: pulumi.Resource
    """The listener rule forwarding to the target group: AWS refuses ALBRequestCountPerTarget
    scaling until the target group is attached to the load balancer."""
    request_count_label: pulumi.Input[str]
    """`<alb arn suffix>/<target group arn suffix>` for ALBRequestCountPerTarget."""
    warm_pool_min_size: int | None = None
    """Warm pool sized for the coming event; None keeps the settings' size."""
    demand_metric: DemandMetric | None = None
    """The waiting room's demand metric; None when the stack has no room."""
    tags: dict[str, str]


class WebFleet(pulumi.ComponentResource):
    """Private, IMDSv2-only instances in an ELB-health-checked group that scales on demand."""

    group: aws.autoscaling.Group
    launch_template: aws.ec2.LaunchTemplate

    def __init__(
        self, name: str, args: WebFleetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("floodgate:web_fleet:WebFleet", name, None, opts)
        self._name, self._args = name, args
        self._child = pulumi.ResourceOptions(parent=self)
        role, profile_arn = self._declare_instance_profile()
        may_release = self._declare_hook_release(role)
        security_group_id = self._declare_security_group()
        self.launch_template = self._declare_launch_template(profile_arn, security_group_id)
        self.group = self._declare_group(may_release)
        self._declare_launch_hook()
        self._declare_scaling_policies()
        self.register_outputs({"group_name": self.group.name})

    def _declare_instance_profile(self) -> tuple[aws.iam.Role, pulumi.Output[str]]:
        """The instances' role: Session Manager, no SSH keys; and (see _declare_launch_hook)
        releasing their own group's launch hook."""
        name, tags, child = self._name, self._args.tags, self._child
        role = service_role(f"{name}-instance", "ec2.amazonaws.com", tags, child)
        aws.iam.RolePolicyAttachment(
            f"{name}-ssm",
            role=role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
            opts=child,
        )
        profile = aws.iam.InstanceProfile(f"{name}-instance", role=role.name, tags=tags, opts=child)
        return role, profile.arn

    def _declare_security_group(self) -> pulumi.Output[str]:
        """The app port from the ALB only in; HTTPS out (SSM, packages) through NAT."""
        name, args = self._name, self._args
        port = args.load_balancer.app_port
        return aws.ec2.SecurityGroup(
            f"{name}-instances",
            vpc_id=args.vpc_id,
            description="Web instances: app port from the ALB only",
            ingress=[{"protocol": "tcp", "from_port": port, "to_port": port,
                      "security_groups": [args.alb_security_group_id],
                      "description": "from the ALB"}],
            egress=[{"protocol": "tcp", "from_port": 443, "to_port": 443,
                     "cidr_blocks": ["0.0.0.0/0"],
                     "description": "HTTPS out via NAT/endpoints (SSM, packages)"}],
            tags={**args.tags, "Name": f"{name}-instances"},
            opts=self._child,
        ).id  # fmt: skip

    def _declare_launch_template(
        self, profile_arn: pulumi.Output[str], security_group_id: pulumi.Output[str]
    ) -> aws.ec2.LaunchTemplate:
        """IMDSv2 only, no public address, an encrypted gp3 root volume, the pinned AMI."""
        name, s, tags = self._name, self._args.settings, self._args.tags
        return aws.ec2.LaunchTemplate(
            name,
            image_id=s.ami_id,  # pinned per stack: a new AMI rolls the fleet
            instance_type=s.instance_types[0],
            update_default_version=True,
            iam_instance_profile={"arn": profile_arn},
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
                "instance_metadata_tags": "disabled",
            },
            network_interfaces=[
                {
                    "associate_public_ip_address": "false",
                    "delete_on_termination": "true",
                    "security_groups": [security_group_id],
                }
            ],
            block_device_mappings=[
                {
                    "device_name": "/dev/xvda",
                    "ebs": {
                        "volume_type": "gp3",
                        "volume_size": s.root_volume_gb,
                        "encrypted": "true",
                        "delete_on_termination": "true",
                    },
                }
            ],
            monitoring={"enabled": True},
            user_data=base64.b64encode(user_data(s, self._args.load_balancer).encode()).decode(),
            tag_specifications=[
                {"resource_type": kind, "tags": {**tags, "Name": name}}
                for kind in ("instance", "volume")
            ],
            tags=tags,
            opts=self._child,
        )

    def _launch(self) -> dict[str, Any]:
        """How the group launches: one template with a warm pool, or mixed types with Spot.
        Pinning latest_version (not "$Latest") makes every template change a visible diff on
        the group, which is what starts the instance refresh."""
        s, args = self._args.settings, self._args
        template_ref = {
            "id": self.launch_template.id,
            "version": self.launch_template.latest_version.apply(str),
        }
        if s.warm_pool is not None:
            pool_size = (
                s.warm_pool.min_size if args.warm_pool_min_size is None else args.warm_pool_min_size
            )
            return {
                "launch_template": template_ref,
                "warm_pool": {
                    "pool_state": s.warm_pool.state,
                    "min_size": pool_size,
                    "max_group_prepared_capacity": s.prepared_capacity(pool_size),
                    "instance_reuse_policy": {"reuse_on_scale_in": True},
                },
            }
        return {
            "mixed_instances_policy": {
                "launch_template": {
                    "launch_template_specification": {
                        "launch_template_id": template_ref["id"],
                        "version": template_ref["version"],
                    },
                    "overrides": [{"instance_type": t} for t in s.instance_types],
                },
                "instances_distribution": {
                    "on_demand_base_capacity": s.on_demand_base,
                    "on_demand_percentage_above_base_capacity": 100 - s.spot_pct,
                    "on_demand_allocation_strategy": "prioritized",
                    "spot_allocation_strategy": "price-capacity-optimized",
                },
            },
            "capacity_rebalance": s.spot_pct > 0,
        }

    def _declare_group(self, may_release: aws.iam.RolePolicy) -> aws.autoscaling.Group:
        """The group, ELB-health-checked, refreshed launch-before-terminate. Pulumi sets sizes
        and the warm pool when it creates it; after that scaling policies, scheduled actions
        and the pre-scale runner own them, and a `pulumi up --refresh` mid-event must not put
        them back (RUNTIME_MANAGED). Created after `may_release`: its first instances release
        their launch hook, which a policy created after the group would refuse them."""
        s, args = self._args.settings, self._args
        return aws.autoscaling.Group(
            self._name,
            min_size=s.min_size,
            max_size=s.max_size,
            desired_capacity=s.min_size,
            vpc_zone_identifiers=args.private_subnet_ids,
            target_group_arns=[args.target_group_arn],
            health_check_type="ELB",
            health_check_grace_period=s.health_check_grace_s,
            default_instance_warmup=s.default_warmup_s,
            # On a new group the hook must exist before its first launch (pulumi-aws: "If you
            # need hooks to run on all instances, add them with initial_lifecycle_hook"); it is
            # ignored afterwards (CREATE_ONLY), or adding it would replace a running group.
            initial_lifecycle_hooks=[self._launch_hook_spec()],
            # Launch before terminating: a refresh or rebalance never dips below desired.
            instance_maintenance_policy={
                "min_healthy_percentage": 100,
                "max_healthy_percentage": 200,
            },
            instance_refresh={
                "strategy": "Rolling",
                "preferences": {
                    "min_healthy_percentage": 100,
                    "max_healthy_percentage": 200,
                    "skip_matching": True,
                    # No auto_rollback: the provider points the group at the new template
                    # version before the refresh starts, so a rollback would return to it
                    # (terraform-provider-aws #34189). Checkpoints let an operator stop a bad
                    # refresh with most of the fleet still on the old version.
                    "checkpoint_percentages": [10, 50, 100],
                    "checkpoint_delay": str(s.default_warmup_s * 3),
                },
            },
            enabled_metrics=GROUP_METRICS,
            metrics_granularity="1Minute",
            termination_policies=["OldestLaunchTemplate", "Default"],
            tags=[
                {"key": k, "value": v, "propagate_at_launch": False}
                for k, v in sorted({**args.tags, FLEET_TAG: self._name}.items())
            ],
            **self._launch(),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[may_release],
                ignore_changes=[*RUNTIME_MANAGED, *CREATE_ONLY],
            ),
        )

    def _launch_hook_spec(self) -> aws.autoscaling.GroupInitialLifecycleHookArgsDict:
        """Hold every launch (into the warm pool and into service) until the bootstrap says it
        is done, at most `launch_hook_timeout_s`; an instance that never says so is abandoned
        (terminated and replaced), never put in service half-made."""
        return {
            "name": LAUNCH_HOOK,
            "lifecycle_transition": "autoscaling:EC2_INSTANCE_LAUNCHING",
            "heartbeat_timeout": self._args.settings.launch_hook_timeout_s,
            "default_result": "ABANDON",
        }

    def _declare_hook_release(self, role: aws.iam.Role) -> aws.iam.RolePolicy:
        """The instances' right to release their own group's launch hook, before the group
        exists: by the group's tag (its name is Pulumi's to choose), not its ARN.
        CompleteLifecycleAction takes autoscaling:ResourceTag conditions; Describe actions
        have no resource-level permissions (Service Authorization Reference)."""
        return aws.iam.RolePolicy(
            f"{self._name}-launch-hook",
            role=role.id,
            policy=iam.document(
                [
                    {
                        "Effect": "Allow",
                        "Action": ["autoscaling:CompleteLifecycleAction"],
                        "Resource": "*",
                        "Condition": {
                            "StringEquals": {f"autoscaling:ResourceTag/{FLEET_TAG}": self._name}
                        },
                    },
                    {
                        "Effect": "Allow",
                        "Action": ["autoscaling:DescribeAutoScalingInstances"],
                        "Resource": "*",
                    },
                ]
            ),
            opts=self._child,
        )

    def _declare_launch_hook(self) -> None:
        """The same hook as its own resource, for groups created before it existed: the
        group's initial hooks apply at creation only, and PutLifecycleHook sets the same
        values."""
        spec = self._launch_hook_spec()
        aws.autoscaling.LifecycleHook(
            f"{self._name}-bootstrap",
            autoscaling_group_name=self.group.name,
            name=spec["name"],
            lifecycle_transition=spec["lifecycle_transition"],
            heartbeat_timeout=spec.get("heartbeat_timeout"),
            default_result=spec.get("default_result"),
            opts=self._child,
        )

    def _declare_scaling_policies(self) -> None:
        """Target tracking on requests per target, on CPU and (with a room) on the room's
        demand. Auto Scaling follows whichever asks for most, and scales in only when all
        agree."""
        name, s, args, child = self._name, self._args.settings, self._args, self._child
        self._track(
            f"{name}-requests",
            {
                "predefined_metric_specification": {
                    "predefined_metric_type": "ALBRequestCountPerTarget",
                    "resource_label": args.request_count_label,
                },
                "target_value": s.scaling.requests_per_target,
            },
            pulumi.ResourceOptions(parent=self, depends_on=[args.target_group_attached]),
        )
        self._track(
            f"{name}-cpu",
            {
                "predefined_metric_specification": {
                    "predefined_metric_type": "ASGAverageCPUUtilization"
                },
                "target_value": s.scaling.cpu_target_pct,
            },
            child,
        )
        if args.demand_metric is not None:
            # The room's demand at the same utilisation target: while people wait it reads at
            # least the target, so this policy never agrees to scale in then.
            metric = args.demand_metric
            self._track(
                f"{name}-room-demand",
                {
                    "customized_metric_specification": {
                        "namespace": metric.namespace,
                        "metric_name": metric.name,
                        "metric_dimensions": [{"name": "Room", "value": metric.room_id}],
                        "statistic": "Average",
                        "unit": "Percent",
                        "period": metric.period_s,
                    },
                    "target_value": round(s.scaling_target_pct, 2),
                },
                child,
            )

    def _track(
        self,
        name: str,
        configuration: aws.autoscaling.PolicyTargetTrackingConfigurationArgsDict,
        opts: pulumi.ResourceOptions,
    ) -> None:
        """One target tracking policy on the group."""
        aws.autoscaling.Policy(
            name,
            autoscaling_group_name=self.group.name,
            policy_type="TargetTrackingScaling",
            target_tracking_configuration=configuration,
            opts=opts,
        )


def user_data(fleet: FleetSettings, load_balancer: LoadBalancerSettings) -> str:
    """The instances' user data: Floodgate's bootstrap (functions/instance/bootstrap.sh) around
    the application's (`fleet.user_data`, or the placeholder portal of user_data.sh). Raises
    ValueError past EC2's 16 KB."""
    app = fleet.user_data
    if app is None:
        app = Template(DEFAULT_USER_DATA.read_text(encoding="utf-8")).substitute(
            app_port=load_balancer.app_port, health_check_path=load_balancer.health_check_path
        )
    script = Template(BOOTSTRAP.read_text(encoding="utf-8")).substitute(
        app_bootstrap_b64=base64.b64encode(app.encode()).decode(),
        app_port=load_balancer.app_port,
        health_check_path=load_balancer.health_check_path,
        hook_name=LAUNCH_HOOK,
        hook_timeout_s=fleet.launch_hook_timeout_s,
    )
    size = len(script.encode())
    if size > USER_DATA_LIMIT_BYTES:
        raise ValueError(
            f"fleet.user_data: the instances' user data would be {size:,} bytes with Floodgate's "
            f"bootstrap; EC2 takes at most {USER_DATA_LIMIT_BYTES:,}: shorten the script (fetch "
            "the rest from S3 or bake it into the AMI)"
        )
    return script
