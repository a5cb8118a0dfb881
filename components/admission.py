"""The waiting room: DynamoDB table, queue API (HTTP API -> Lambda), inlet schedule, KVS, alarms.

The edge half (the gate function on the default behaviour and the `/queue/*` behaviour) is
declared by components/edge.py from `Admission.edge`; the Lambda code is functions/admission/.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components import iam
from components.alarms import metric_alarm
from components.http_api import access_logs, lambda_route, origin_host
from components.lambda_function import ARCH, RUNTIME, lambda_function
from components.service_role import service_role
from functions.admission.room import FAULT_LOG
from planning.capacity import (
    DEMAND_METRIC,
    METRIC_NAMESPACE,
    ORIGIN_VERIFY_SUFFIX,
    QUEUE_FUNCTION_MEMORY_MB,
    QueueApiDesign,
    room_warm_throughput,
)
from planning.settings import (
    ADMIN_CONCURRENCY,
    INLET_CONCURRENCY,
    AdmissionSettings,
)

ROOT = Path(__file__).resolve().parent.parent
CODE_DIR = ROOT / "functions/admission"
LAYER_DIR = ROOT / "build/layers/awscrt"
"""Built by `make layer`: awscrt for SigV4A, which the KeyValueStore API requires."""
__all__ = ["DEMAND_METRIC", "METRIC_NAMESPACE", "Admission", "AdmissionArgs", "EdgeWiring"]
INLET_TIMEOUT_S = 58
FAULTS_METRIC = "QueueApiFaults"
"""Joins and polls that failed unexpectedly: the handlers answer them 429 and log FAULT_LOG."""
ROUTES = (("POST /queue/join", "join", "join"), ("GET /queue/status", "status", "status"),
          ("GET /queue/room", "status", "room"))  # fmt: skip
"""The queue API's routes, the function behind each (functions/admission/handlers.py) and its
throttle (planning.capacity.QueueApiDesign.route_limits)."""
VISITOR_READS = ["room", "visitor#*", "place#*", "tally#*", "carry#*", "revoked#*"]
VISITOR_WRITES = ["count#*", "visitor#*", "place#*", "collected#*", "joins#*", "carry#*",
                  "carries#*", "metered#*"]  # fmt: skip
"""Room-table keys join and status may read and write (dynamodb:LeadingKeys): they write never
the room, tallies, calendar or revocations, which only the inlet and admin functions write. A carry
(room.Room.carry) reads its network's revocation shard and writes its own carry records.
tests/functions/test_hardening.py records every key the handlers touch against these."""
ADMIN_READS = ["room", "visitor#*", "revoked#*"]
ADMIN_WRITES = ["room", "place#*", "revoked#*"]
INITIAL_KEY_STAGE = "floodgate-initial"


@dataclass(frozen=True)
class EdgeWiring:
    """What the distribution needs of the room."""

    api_domain: pulumi.Output[str]
    kvs_arn: pulumi.Output[str]


@dataclass(frozen=True, kw_only=True)
class AdmissionArgs:
    settings: AdmissionSettings
    tunables: dict[str, str]
    """The inlet's and handlers' `FG_*` figures (planning.capacity.room_tunables)."""
    queue_api: QueueApiDesign
    """Join and status concurrency (planning.capacity.queue_api_design)."""
    asg_name: pulumi.Input[str]
    target_group_arn_suffix: pulumi.Input[str]
    """`targetgroup/<name>/<id>`: the RequestCountPerTarget dimension (origin load)."""
    load_balancer_arn_suffix: pulumi.Input[str]
    """`app/<name>/<id>`: the load balancer's dimension (its 5xx, 4xx, rejected connections,
    and with the target group's, response time)."""
    pause_alarm_names: pulumi.Input[list[str]]
    """Admissions pause while any of these (the origin 5xx alarms) is in ALARM."""
    pause_alarm_arns: pulumi.Input[list[str]]
    """The same alarms' ARNs: the inlet may describe these and no others."""
    origin_secrets: list[pulumi.Input[str]]
    """Values CloudFront may add in ORIGIN_HEADER; the queue API refuses requests without one
    (where its execute-api endpoint is still public)."""
    api_certificate_arn: str
    """The custom domain's regional certificate (settings.api_certificate_arn, or the ALB's)."""
    hosted_zone_id: str | None = None
    """Where the custom domain's alias record goes (load_balancer.hosted_zone_id; the settings
    require it with a custom domain)."""
    alarm_topic_arn: pulumi.Input[str]
    protect: bool
    """Protect the table (also with DynamoDB deletion protection), key-value store and signing
    keys from replacement and deletion: every stack but PR previews, destroyed with their PR."""
    tags: dict[str, str]
    require_layer: bool
    """Fail early unless `make layer` has built the awscrt layer: a real preview or update
    uploads it (the offline plan uploads nothing and passes False)."""


@dataclass(frozen=True)
class FunctionSpec:
    """One of the room's Lambda functions: its handler, limits and IAM grants."""

    handler: str
    """The function in functions/admission/handlers.py."""
    timeout_s: int
    memory_mb: int
    concurrency: int
    """Reserved concurrency (comes out of the account's regional pool)."""
    grants: list[iam.Grant]


class Admission(pulumi.ComponentResource):
    """Queue-based admission: places, an inlet paced by the fleet, tokens checked at the edge.

    Named outputs: `table`, `kvs`, `api`, `functions` (join, status, inlet, admin),
    `admin_function_name` and `edge` (what the distribution needs)."""

    table: aws.dynamodb.Table
    kvs: aws.cloudfront.KeyValueStore
    api: aws.apigatewayv2.Api
    functions: dict[str, aws.lambda_.Function]
    admin_function_name: pulumi.Output[str]
    edge: EdgeWiring

    def __init__(
        self, name: str, args: AdmissionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("floodgate:admission:Admission", name, None, opts)
        if args.require_layer:
            _require_layer()
        self._name, self._args = name, args
        self._child = pulumi.ResourceOptions(parent=self)
        # Protected: a replaced table, store or secret is a new, empty room mid-event.
        self._stateful = pulumi.ResourceOptions(parent=self, protect=args.protect)
        self._account = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id
        self._declare_state()
        keys_arn = self._declare_signing_keys()
        origin_arn = self._declare_origin_verify()
        self._declare_functions(keys_arn, origin_arn)
        self._declare_api()
        self._declare_inlet_schedule()
        self._declare_alarms()
        self.admin_function_name = self.functions["admin"].name
        self.edge = EdgeWiring(
            api_domain=origin_host(
                f"{name}-queue",
                api=self.api,
                stage=self.stage,
                domain_name=args.settings.api_domain_name,
                certificate_arn=args.api_certificate_arn,
                hosted_zone_id=args.hosted_zone_id,
                tags=args.tags,
                opts=self._child,
            ),
            kvs_arn=self.kvs.arn,
        )
        self.register_outputs(
            {
                "room_table": self.table.name,
                "kvs_arn": self.kvs.arn,
                "queue_api": self.api.api_endpoint,
                "admin_function": self.admin_function_name,
            }
        )

    def _declare_state(self) -> None:
        """The room table and the KeyValueStore the gate reads. Warm throughput is ignored once
        created: AWS never lowers it, so a plan with a lower value (or a refresh reading a raised
        one) would replace the table. Raise it outside Pulumi (`aws dynamodb update-table`)."""
        name, s = self._name, self._args.settings
        warm = room_warm_throughput(s)
        self.table = aws.dynamodb.Table(
            f"{name}-room",
            billing_mode="PAY_PER_REQUEST",
            hash_key="pk",
            attributes=[{"name": "pk", "type": "S"}],
            ttl={"attribute_name": "expires_at", "enabled": True},
            point_in_time_recovery={"enabled": True},
            server_side_encryption={"enabled": True},
            deletion_protection_enabled=self._args.protect,
            warm_throughput={
                "write_units_per_second": warm.writes_per_s,
                "read_units_per_second": warm.reads_per_s,
            },
            tags=self._args.tags,
            opts=pulumi.ResourceOptions.merge(
                self._stateful, pulumi.ResourceOptions(ignore_changes=["warmThroughput"])
            ),
        )
        self.kvs = aws.cloudfront.KeyValueStore(
            f"{name}-room",
            comment="Waiting-room state, signing keys, revocations",
            opts=self._stateful,
        )

    def _declare_signing_keys(self) -> pulumi.Output[str]:
        """The token signing-key secret and its first key (256 random bits, a secret in
        state), then owned by the admin function: rotations write new versions and Pulumi
        never reverts them. Returns the secret's ARN."""
        name = self._name
        first_key = random.RandomId(
            f"{name}-signing-key",
            byte_length=32,
            opts=pulumi.ResourceOptions(
                parent=self, additional_secret_outputs=["hex", "b64_std", "b64_url", "dec"]
            ),
        )
        keys = aws.secretsmanager.Secret(
            f"{name}-signing-keys",
            description="Waiting-room token signing keys (current + retiring)",
            recovery_window_in_days=7,
            tags=self._args.tags,
            opts=self._stateful,
        )
        # The first version keeps a stage of its own: after two rotations it loses AWSCURRENT
        # and AWSPREVIOUS, and a version with no stage may be deleted - the provider would then
        # re-create it and make the original key current again (terraform-provider-aws #37302).
        aws.secretsmanager.SecretVersion(
            f"{name}-signing-keys",
            secret_id=keys.id,
            secret_string=pulumi.Output.secret(first_key.hex).apply(
                lambda key: json.dumps({"current": "k0", "keys": {"k0": {"key": key}}})
            ),
            version_stages=[INITIAL_KEY_STAGE, "AWSCURRENT"],
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=["secretString", "versionStages"]
            ),
        )
        return keys.arn

    def _declare_origin_verify(self) -> pulumi.Output[str]:
        """The values CloudFront adds on its way to the queue API, for the handlers to check:
        Pulumi's (the two origin-secret slots), rewritten whenever a slot is rotated. Returns
        the secret's ARN."""
        name = self._name
        origin_verify = aws.secretsmanager.Secret(
            f"{name}{ORIGIN_VERIFY_SUFFIX}",
            description="Values CloudFront sends in X-Floodgate-Origin-Verify (comma-separated)",
            recovery_window_in_days=7,
            tags=self._args.tags,
            opts=self._stateful,
        )
        aws.secretsmanager.SecretVersion(
            f"{name}{ORIGIN_VERIFY_SUFFIX}",
            secret_id=origin_verify.id,
            secret_string=pulumi.Output.secret(
                pulumi.Output.all(*self._args.origin_secrets).apply(",".join)
            ),
            opts=self._child,
        )
        return origin_verify.arn

    def _declare_functions(
        self, keys_arn: pulumi.Output[str], origin_arn: pulumi.Output[str]
    ) -> None:
        """The four functions, one code bundle and the awscrt layer; every `FG_*` variable."""
        name, args = self._name, self._args
        layer = aws.lambda_.LayerVersion(
            f"{name}-awscrt",
            layer_name=f"{name}-awscrt",
            description="awscrt: SigV4A signing for the CloudFront KeyValueStore API",
            code=pulumi.FileArchive(str(LAYER_DIR)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCH],
            opts=self._child,
        )
        code = pulumi.AssetArchive(
            {
                f"admission/{path.name}": pulumi.FileAsset(str(path))
                for path in sorted(CODE_DIR.glob("*.py"))
            }
        )
        environment = {
            "FG_TABLE": self.table.name,
            "FG_SECRET_ID": keys_arn,
            "FG_KVS_ARN": self.kvs.arn,
            **args.tunables,
            "FG_ASG_NAME": args.asg_name,
            "FG_TARGET_GROUP": args.target_group_arn_suffix,
            "FG_LOAD_BALANCER": args.load_balancer_arn_suffix,
            "FG_ALARM_NAMES": pulumi.Output.from_input(args.pause_alarm_names).apply(",".join),
            "FG_ORIGIN_SECRET_ID": origin_arn,
        }
        self.functions = {
            label: self._function(label, spec, code, layer, environment)
            for label, spec in self._function_specs(keys_arn, origin_arn).items()
        }

    def _function_specs(
        self, keys_arn: pulumi.Output[str], origin_arn: pulumi.Output[str]
    ) -> dict[str, FunctionSpec]:
        """Each function's handler, limits and grants: join and status touch only visitors'
        keys; the inlet owns the table; admin the room, places and revocations."""
        args, table = self._args, self.table.arn
        read = ["dynamodb:GetItem", "dynamodb:BatchGetItem"]
        write = ["dynamodb:PutItem", "dynamodb:UpdateItem"]
        kvs_rw = iam.Grant(
            [
                "cloudfront-keyvaluestore:DescribeKeyValueStore",
                "cloudfront-keyvaluestore:ListKeys",
                "cloudfront-keyvaluestore:UpdateKeys",
            ],
            self.kvs.arn,
        )
        visitor = [
            iam.Grant(read, table, leading_keys=VISITOR_READS),
            iam.Grant(write, table, leading_keys=VISITOR_WRITES),
            iam.Grant(["secretsmanager:GetSecretValue"], [keys_arn, origin_arn]),
        ]
        inlet = [
            iam.Grant([*read, *write, "dynamodb:BatchWriteItem"], table),
            iam.Grant(["secretsmanager:GetSecretValue"], keys_arn),
            kvs_rw,
            # Neither has resource-level permissions (Service Authorization Reference).
            iam.Grant(
                [
                    "autoscaling:DescribeAutoScalingGroups",
                    "cloudwatch:GetMetricStatistics",
                    "cloudwatch:GetMetricData",
                ],
                "*",
            ),
            # Metric alarms can be named (composite alarms would need "*").
            iam.Grant(["cloudwatch:DescribeAlarms"], args.pause_alarm_arns),
            iam.Grant(
                ["cloudwatch:PutMetricData"],
                "*",
                condition={"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}},
            ),
        ]
        admin = [
            iam.Grant(read, table, leading_keys=ADMIN_READS),
            iam.Grant(write, table, leading_keys=ADMIN_WRITES),
            iam.Grant(["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"], keys_arn),
            kvs_rw,
        ]
        api = args.queue_api
        return {
            "join": FunctionSpec(
                "join", 10, QUEUE_FUNCTION_MEMORY_MB, api.join_concurrency, visitor
            ),
            "status": FunctionSpec(
                "status", 10, QUEUE_FUNCTION_MEMORY_MB, api.status_concurrency, visitor
            ),
            # Inside the minute: the schedule fires every 60 s and a run still going then
            # throttles the next (reserved concurrency 1). The handler stops stepping 3 s
            # before this timeout.
            "inlet": FunctionSpec("inlet", INLET_TIMEOUT_S, 512, INLET_CONCURRENCY, inlet),
            "admin": FunctionSpec("admin", 30, 256, ADMIN_CONCURRENCY, admin),
        }

    def _function(
        self,
        label: str,
        spec: FunctionSpec,
        code: pulumi.Archive,
        layer: aws.lambda_.LayerVersion,
        environment: dict[str, pulumi.Input[str]],
    ) -> aws.lambda_.Function:
        """One function with its log group, role and policy (its grants + its own logs)."""
        return lambda_function(
            f"{self._name}-room-{label}",
            handler=f"admission.handlers.{spec.handler}",
            code=code,
            timeout_s=spec.timeout_s,
            memory_mb=spec.memory_mb,
            environment=environment,
            grants=spec.grants,
            log_retention_days=self._args.settings.log_group_retention_days,
            account=self._account,
            tags=self._args.tags,
            parent=self,
            layers=[layer.arn],
            reserved_concurrency=spec.concurrency,
        )

    def _declare_api(self) -> None:
        """The HTTP API, its throttled `$default` stage with access logs, and one integration,
        route and invoke permission per route in ROUTES."""
        name, s, tags, child = self._name, self._args.settings, self._args.tags, self._child
        self.api = aws.apigatewayv2.Api(
            f"{name}-queue",
            protocol_type="HTTP",
            description="Waiting-room queue API, served under /queue/* by CloudFront",
            # With a custom domain CloudFront uses it, and the default endpoint is turned off:
            # a direct request would otherwise spend the throttle and concurrency visitors need.
            disable_execute_api_endpoint=s.api_domain_name is not None,
            tags=tags,
            opts=child,
        )
        logged = access_logs(
            f"{name}-queue-access", f"/floodgate/{name}/queue-api", s.log_group_retention_days,
            tags, child,
        )  # fmt: skip
        routes = [self._declare_route(route, self.functions[label]) for route, label, _ in ROUTES]
        limits = self._args.queue_api.route_limits(s.api_rate_limit, s.api_burst_limit)
        self.stage = aws.apigatewayv2.Stage(
            f"{name}-queue",
            api_id=self.api.id,
            name="$default",
            auto_deploy=True,
            default_route_settings={
                "throttling_rate_limit": s.api_rate_limit,
                "throttling_burst_limit": s.api_burst_limit,
            },
            # Each route answers 429 before its function's reserved concurrency would throttle
            # (API Gateway's 500); route settings name routes that must exist first.
            route_settings=[
                {
                    "route_key": route,
                    "throttling_rate_limit": limits[limit][0],
                    "throttling_burst_limit": limits[limit][1],
                }
                for route, _, limit in ROUTES
            ],
            access_log_settings=logged,
            tags=tags,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=routes)),
        )

    def _declare_route(self, route: str, function: aws.lambda_.Function) -> aws.apigatewayv2.Route:
        """`route` ("METHOD /path") to `function`, invoked for that route only."""
        slug = route.rsplit("/", 1)[-1]
        return lambda_route(
            f"{self._name}-queue-{slug}", api=self.api, route=route, function=function,
            opts=self._child,
        )  # fmt: skip

    def _declare_inlet_schedule(self) -> None:
        """EventBridge Scheduler runs the inlet every minute (its finest rate); a late or
        throttled run is dropped, not retried: the next one is a minute away (Lambda's own
        async defaults are 2 retries over up to 6 hours)."""
        name, child, inlet = self._name, self._child, self.functions["inlet"]
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-room-inlet",
            function_name=inlet.name,
            maximum_retry_attempts=0,
            maximum_event_age_in_seconds=60,
            opts=child,
        )
        scheduler_role = service_role(
            f"{name}-inlet-schedule",
            "scheduler.amazonaws.com",
            self._args.tags,
            child,
            self._account,
        )
        aws.iam.RolePolicy(
            f"{name}-inlet-schedule",
            role=scheduler_role.id,
            policy=iam.policy([iam.Grant(["lambda:InvokeFunction"], inlet.arn)]),
            opts=child,
        )
        aws.scheduler.Schedule(
            f"{name}-inlet",
            description="Waiting-room inlet: admit what the fleet can serve",
            schedule_expression="rate(1 minute)",
            flexible_time_window={"mode": "OFF"},
            target={
                "arn": inlet.arn,
                "role_arn": scheduler_role.arn,
                "retry_policy": {"maximum_retry_attempts": 0, "maximum_event_age_in_seconds": 60},
            },
            opts=child,
        )

    def _declare_alarms(self) -> None:
        """Errors and throttles per function, the inlet stopping, the API's 5xx and a long
        line, each to the alarm topic."""
        s = self._args.settings
        for label, function in self.functions.items():
            fn = {"FunctionName": function.name}
            self._alarm(
                f"{label}-errors",
                f"Waiting-room {label} function errors",
                "AWS/Lambda",
                "Errors",
                fn,
                "Sum",
                threshold=1 if label in ("inlet", "admin") else 10,
            )
            self._alarm(
                f"{label}-throttles",
                f"Waiting-room {label} function throttled",
                "AWS/Lambda",
                "Throttles",
                fn,
                "Sum",
                threshold=1,
            )
        self._alarm(
            "inlet-stopped",
            "The inlet has not run for 3 minutes: nobody is being admitted",
            "AWS/Lambda",
            "Invocations",
            {"FunctionName": self.functions["inlet"].name},
            "Sum",
            threshold=1,
            comparison="LessThanThreshold",
            periods=3,
            missing="breaching",
        )
        self._declare_fault_alarm()
        self._alarm(
            "api-5xx",
            "Queue API answered 5xx",
            "AWS/ApiGateway",
            "5xx",
            {"ApiId": self.api.id, "Stage": "$default"},
            "Sum",
            threshold=10,
        )
        self._alarm(
            "waiting",
            f"More than {s.waiting_alarm_threshold} people waiting",
            METRIC_NAMESPACE,
            "Waiting",
            {"Room": s.room_id},
            "Maximum",
            threshold=s.waiting_alarm_threshold,
            periods=5,
        )

    def _declare_fault_alarm(self) -> None:
        """The handlers answer a fault 429 (never 5xx) and log FAULT_LOG: a metric filter on
        the join and status logs counts it, and an alarm watches the count."""
        for label in ("join", "status"):
            aws.cloudwatch.LogMetricFilter(
                f"{self._name}-room-{label}-faults",
                log_group_name=self.functions[label].logging_config.apply(
                    lambda c: c.log_group if c else ""
                ),
                pattern=f'"{FAULT_LOG}"',
                metric_transformation={
                    "namespace": METRIC_NAMESPACE,
                    "name": FAULTS_METRIC,
                    "value": "1",
                    "default_value": "0",
                },
                opts=self._child,
            )
        self._alarm(
            "api-faults",
            "Queue API faults (answered 429, logged as floodgate-queue fault)",
            METRIC_NAMESPACE,
            FAULTS_METRIC,
            {},
            "Sum",
            threshold=10,
        )

    def _alarm(
        self,
        label: str,
        description: str,
        namespace: str,
        metric_name: str,
        dimensions: Mapping[str, pulumi.Input[str]],
        statistic: str,
        *,
        threshold: float,
        comparison: str = "GreaterThanOrEqualToThreshold",
        periods: int = 1,
        missing: str = "notBreaching",
    ) -> None:
        """One 1-minute metric alarm `<name>-room-<label>` notifying the alarm topic."""
        metric_alarm(
            f"{self._name}-room-{label}",
            description,
            topic_arn=self._args.alarm_topic_arn,
            threshold=threshold,
            tags=self._args.tags,
            opts=self._child,
            evaluation_periods=periods,
            comparison=comparison,
            missing=missing,
            namespace=namespace,
            metric_name=metric_name,
            dimensions=dimensions,
            statistic=statistic,
            period=60,
        )


def _require_layer() -> None:
    """A real preview or update uploads the layer: fail early, saying how to build it."""
    if not LAYER_DIR.is_dir():
        shown = LAYER_DIR.relative_to(ROOT) if LAYER_DIR.is_relative_to(ROOT) else LAYER_DIR
        raise RuntimeError(
            f"{shown} is missing: run `make layer` before `pulumi preview` or `pulumi up` (it "
            "holds awscrt, which the KeyValueStore API's SigV4A needs)"
        )
