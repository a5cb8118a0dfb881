"""The waiting room: DynamoDB table, queue API (HTTP API -> Lambda), inlet schedule, KVS, alarms.

The edge half (the gate function on the default behaviour and the `/queue/*` behaviour) is
declared by components/edge.py from `Admission.edge`; the Lambda code is functions/admission/.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.service_role import service_role
from planning.capacity import (
    DEMAND_METRIC,
    METRIC_NAMESPACE,
    ORIGIN_VERIFY_SUFFIX,
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
RUNTIME, ARCH = "python3.12", "arm64"
__all__ = ["DEMAND_METRIC", "METRIC_NAMESPACE", "Admission", "AdmissionArgs", "EdgeWiring"]
INLET_TIMEOUT_S = 58
ROUTES = (("POST /queue/join", "join"), ("GET /queue/status", "status"),
          ("GET /queue/room", "status"))  # fmt: skip
"""The queue API's routes and the function behind each (functions/admission/handlers.py)."""
VISITOR_READS = ["room", "visitor#*", "place#*", "tally#*"]
VISITOR_WRITES = ["count#*", "visitor#*", "place#*", "collected#*", "joins#*"]
"""Room-table keys join and status may read and write (dynamodb:LeadingKeys): never the room,
tallies, calendar or revocations, which only the inlet and admin functions write."""
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
    pause_alarm_names: pulumi.Input[list[str]]
    """Admissions pause while any of these (the origin 5xx alarms) is in ALARM."""
    pause_alarm_arns: pulumi.Input[list[str]]
    """The same alarms' ARNs: the inlet may describe these and no others."""
    origin_secrets: list[pulumi.Input[str]]
    """Values CloudFront may add in ORIGIN_HEADER; the queue API refuses requests without one
    (its execute-api endpoint is public)."""
    alarm_topic_arn: pulumi.Input[str]
    protect: bool
    """Protect the table (also with DynamoDB deletion protection), key-value store and signing
    keys from replacement and deletion: every stack but PR previews, destroyed with their PR."""
    tags: dict[str, str]


class Admission(pulumi.ComponentResource):
    """Queue-based admission: places, an inlet paced by the fleet, tokens checked at the edge."""

    table: aws.dynamodb.Table
    kvs: aws.cloudfront.KeyValueStore
    api: aws.apigatewayv2.Api
    functions: dict[str, aws.lambda_.Function]
    edge: EdgeWiring

    def __init__(
        self, name: str, args: AdmissionArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("floodgate:admission:Admission", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        s, tags = args.settings, args.tags
        _require_layer()

        # Protected, and warm throughput ignored once created: AWS never lowers it, so a plan
        # with a lower value (or a refresh reading a raised one) would replace the table - a
        # new, empty room mid-event. Raise it outside Pulumi (`aws dynamodb update-table`).
        stateful = pulumi.ResourceOptions(parent=self, protect=args.protect)
        warm = room_warm_throughput(s)
        self.table = aws.dynamodb.Table(
            f"{name}-room",
            billing_mode="PAY_PER_REQUEST",
            hash_key="pk",
            attributes=[{"name": "pk", "type": "S"}],
            ttl={"attribute_name": "expires_at", "enabled": True},
            point_in_time_recovery={"enabled": True},
            server_side_encryption={"enabled": True},
            deletion_protection_enabled=args.protect,
            warm_throughput={
                "write_units_per_second": warm.writes_per_s,
                "read_units_per_second": warm.reads_per_s,
            },
            tags=tags,
            opts=pulumi.ResourceOptions.merge(
                stateful, pulumi.ResourceOptions(ignore_changes=["warmThroughput"])
            ),
        )

        # The first signing key: 256 random bits, a secret in state, then owned by the admin
        # function (rotations write new versions; Pulumi never reverts them).
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
            tags=tags,
            opts=stateful,
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
        # The values CloudFront adds on its way to the queue API, for the handlers to check:
        # Pulumi's (the two origin-secret slots), rewritten whenever a slot is rotated.
        origin_verify = aws.secretsmanager.Secret(
            f"{name}{ORIGIN_VERIFY_SUFFIX}",
            description="Values CloudFront sends in X-Floodgate-Origin-Verify (comma-separated)",
            recovery_window_in_days=7,
            tags=tags,
            opts=stateful,
        )
        aws.secretsmanager.SecretVersion(
            f"{name}{ORIGIN_VERIFY_SUFFIX}",
            secret_id=origin_verify.id,
            secret_string=pulumi.Output.secret(
                pulumi.Output.all(*args.origin_secrets).apply(",".join)
            ),
            opts=child,
        )
        self.kvs = aws.cloudfront.KeyValueStore(
            f"{name}-room", comment="Waiting-room state, signing keys, revocations", opts=stateful
        )

        layer = aws.lambda_.LayerVersion(
            f"{name}-awscrt",
            layer_name=f"{name}-awscrt",
            description="awscrt: SigV4A signing for the CloudFront KeyValueStore API",
            code=pulumi.FileArchive(str(LAYER_DIR)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCH],
            opts=child,
        )
        code = pulumi.AssetArchive(
            {
                f"admission/{path.name}": pulumi.FileAsset(str(path))
                for path in sorted(CODE_DIR.glob("*.py"))
            }
        )
        environment = {
            "FG_TABLE": self.table.name,
            "FG_SECRET_ID": keys.arn,
            "FG_KVS_ARN": self.kvs.arn,
            **args.tunables,
            "FG_ASG_NAME": args.asg_name,
            "FG_TARGET_GROUP": args.target_group_arn_suffix,
            "FG_ALARM_NAMES": pulumi.Output.from_input(args.pause_alarm_names).apply(",".join),
            "FG_ORIGIN_SECRET_ID": origin_verify.arn,
        }

        account = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id
        specs = self._function_specs(args, keys.arn, origin_verify.arn)
        self.functions = {
            label: self._function(name, label, spec, code, layer, environment, account, s, tags)
            for label, spec in specs.items()
        }

        self.api = aws.apigatewayv2.Api(
            f"{name}-queue",
            protocol_type="HTTP",
            description="Waiting-room queue API, served under /queue/* by CloudFront",
            tags=tags,
            opts=child,
        )
        access_logs = aws.cloudwatch.LogGroup(
            f"{name}-queue-access",
            name=f"/floodgate/{name}/queue-api",
            retention_in_days=s.log_retention_days,
            tags=tags,
            opts=child,
        )
        aws.apigatewayv2.Stage(
            f"{name}-queue",
            api_id=self.api.id,
            name="$default",
            auto_deploy=True,
            default_route_settings={
                "throttling_rate_limit": s.api_rate_limit,
                "throttling_burst_limit": s.api_burst_limit,
            },
            access_log_settings={
                "destination_arn": access_logs.arn,
                "format": json.dumps(
                    {
                        "requestId": "$context.requestId",
                        "route": "$context.routeKey",
                        "status": "$context.status",
                        "latencyMs": "$context.responseLatency",
                        "error": "$context.integrationErrorMessage",
                    }
                ),
            },
            tags=tags,
            opts=child,
        )
        for route, label in ROUTES:
            slug = route.split("/")[-1]
            integration = aws.apigatewayv2.Integration(
                f"{name}-queue-{slug}",
                api_id=self.api.id,
                integration_type="AWS_PROXY",
                integration_uri=self.functions[label].invoke_arn,
                payload_format_version="2.0",
                timeout_milliseconds=10_000,
                opts=child,
            )
            aws.apigatewayv2.Route(
                f"{name}-queue-{slug}",
                api_id=self.api.id,
                route_key=route,
                target=integration.id.apply(lambda i: f"integrations/{i}"),
                opts=child,
            )
        # API Gateway may invoke each function for its own routes only (execute-api ARNs:
        # <api>/<stage>/<METHOD>/<path>).
        for route, label in ROUTES:
            method, path = route.split(" ")
            aws.lambda_.Permission(
                f"{name}-queue-{path.rsplit('/', 1)[-1]}",
                action="lambda:InvokeFunction",
                function=self.functions[label].name,
                principal="apigateway.amazonaws.com",
                source_arn=pulumi.Output.concat(self.api.execution_arn, "/*/", method, path),
                opts=child,
            )

        # The scheduler invokes asynchronously: a late or throttled run must be dropped, not
        # retried for up to 6 hours (Lambda's defaults: 2 retries, 6 h event age).
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-room-inlet",
            function_name=self.functions["inlet"].name,
            maximum_retry_attempts=0,
            maximum_event_age_in_seconds=60,
            opts=child,
        )
        scheduler_role = service_role(
            f"{name}-inlet-schedule", "scheduler.amazonaws.com", tags, child, account
        )
        aws.iam.RolePolicy(
            f"{name}-inlet-schedule",
            role=scheduler_role.id,
            policy=_policy([Grant(["lambda:InvokeFunction"], self.functions["inlet"].arn)]),
            opts=child,
        )
        aws.scheduler.Schedule(
            f"{name}-inlet",
            description="Waiting-room inlet: admit what the fleet can serve",
            schedule_expression="rate(1 minute)",  # Scheduler's finest rate
            flexible_time_window={"mode": "OFF"},
            target={
                "arn": self.functions["inlet"].arn,
                "role_arn": scheduler_role.arn,
                # A late run is useless: the next one is a minute away.
                "retry_policy": {"maximum_retry_attempts": 0, "maximum_event_age_in_seconds": 60},
            },
            opts=child,
        )

        self._alarms(name, s, args.alarm_topic_arn, tags, child)
        self.edge = EdgeWiring(
            api_domain=self.api.api_endpoint.apply(lambda url: url.removeprefix("https://")),
            kvs_arn=self.kvs.arn,
        )
        self.register_outputs(
            {
                "room_table": self.table.name,
                "kvs_arn": self.kvs.arn,
                "queue_api": self.api.api_endpoint,
                "admin_function": self.functions["admin"].name,
            }
        )

    def _function_specs(
        self, args: AdmissionArgs, keys_arn: pulumi.Output[str], origin_arn: pulumi.Output[str]
    ) -> dict[str, dict[str, Any]]:
        """Each function's handler, limits and grants: join and status touch only visitors'
        keys; the inlet owns the table; admin the room, places and revocations."""
        table = self.table.arn
        read, write = (
            ["dynamodb:GetItem", "dynamodb:BatchGetItem"],
            [
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ],
        )
        get_keys = Grant(["secretsmanager:GetSecretValue"], keys_arn)
        kvs_rw = Grant(
            [
                "cloudfront-keyvaluestore:DescribeKeyValueStore",
                "cloudfront-keyvaluestore:ListKeys",
                "cloudfront-keyvaluestore:UpdateKeys",
            ],
            self.kvs.arn,
        )
        visitor = [
            Grant(read, table, leading_keys=VISITOR_READS),
            Grant(write, table, leading_keys=VISITOR_WRITES),
            Grant(["secretsmanager:GetSecretValue"], [keys_arn, origin_arn]),
        ]
        return {
            "join": {"handler": "join", "timeout": 10, "memory": 512,
                     "concurrency": args.queue_api.join_concurrency, "grants": visitor},
            "status": {"handler": "status", "timeout": 10, "memory": 512,
                       "concurrency": args.queue_api.status_concurrency, "grants": visitor},
            # Inside the minute: the schedule fires every 60 s and a run still going then
            # throttles the next (reserved concurrency 1). The handler stops stepping 3 s
            # before this timeout.
            "inlet": {"handler": "inlet", "timeout": INLET_TIMEOUT_S, "memory": 512,
                      "concurrency": INLET_CONCURRENCY, "grants": [
                Grant([*read, *write, "dynamodb:BatchWriteItem"], table),
                get_keys,
                kvs_rw,
                # Neither has resource-level permissions (Service Authorization Reference).
                Grant(["autoscaling:DescribeAutoScalingGroups",
                       "cloudwatch:GetMetricStatistics"], "*"),
                # Metric alarms can be named (composite alarms would need "*").
                Grant(["cloudwatch:DescribeAlarms"], args.pause_alarm_arns),
                Grant(["cloudwatch:PutMetricData"], "*",
                      condition={"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}}),
            ]},
            "admin": {"handler": "admin", "timeout": 30, "memory": 256,
                      "concurrency": ADMIN_CONCURRENCY, "grants": [
                Grant(read, table, leading_keys=ADMIN_READS),
                Grant(write, table, leading_keys=ADMIN_WRITES),
                Grant(["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
                      keys_arn),
                kvs_rw,
            ]},
        }  # fmt: skip

    def _function(
        self,
        name: str,
        label: str,
        spec: dict[str, Any],
        code: pulumi.Archive,
        layer: aws.lambda_.LayerVersion,
        environment: dict[str, pulumi.Input[str]],
        account: pulumi.Output[str],
        s: AdmissionSettings,
        tags: dict[str, str],
    ) -> aws.lambda_.Function:
        child = pulumi.ResourceOptions(parent=self)
        function_name = f"{name}-room-{label}"
        logs = aws.cloudwatch.LogGroup(
            f"{name}-room-{label}",
            name=f"/aws/lambda/{function_name}",
            retention_in_days=s.log_retention_days,
            tags=tags,
            opts=child,
        )
        role = service_role(f"{name}-room-{label}", "lambda.amazonaws.com", tags, child, account)
        grants = [
            *spec["grants"],
            Grant(
                ["logs:CreateLogStream", "logs:PutLogEvents"], pulumi.Output.concat(logs.arn, ":*")
            ),
        ]
        aws.iam.RolePolicy(f"{name}-room-{label}", role=role.id, policy=_policy(grants), opts=child)
        return aws.lambda_.Function(
            f"{name}-room-{label}",
            name=function_name,
            runtime=RUNTIME,
            architectures=[ARCH],
            handler=f"admission.handlers.{spec['handler']}",
            code=code,
            layers=[layer.arn],
            role=role.arn,
            timeout=spec["timeout"],
            memory_size=spec["memory"],
            reserved_concurrent_executions=spec["concurrency"],
            environment={"variables": environment},
            logging_config={"log_format": "JSON", "log_group": logs.name},
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs]),
        )

    def _alarms(
        self,
        name: str,
        s: AdmissionSettings,
        topic_arn: pulumi.Input[str],
        tags: dict[str, str],
        child: pulumi.ResourceOptions,
    ) -> None:
        def alarm(label: str, description: str, **metric: Any) -> None:
            aws.cloudwatch.MetricAlarm(
                f"{name}-room-{label}",
                alarm_description=description,
                comparison_operator=metric.pop("comparison", "GreaterThanOrEqualToThreshold"),
                evaluation_periods=metric.pop("periods", 1),
                period=60,
                alarm_actions=[topic_arn],
                ok_actions=[topic_arn],
                treat_missing_data=metric.pop("missing", "notBreaching"),
                tags=tags,
                opts=child,
                **metric,
            )

        for label, function in self.functions.items():
            fn = {"FunctionName": function.name}
            alarm(
                f"{label}-errors",
                f"Waiting-room {label} function errors",
                namespace="AWS/Lambda",
                metric_name="Errors",
                dimensions=fn,
                statistic="Sum",
                threshold=1 if label in ("inlet", "admin") else 10,
            )
            alarm(
                f"{label}-throttles",
                f"Waiting-room {label} function throttled",
                namespace="AWS/Lambda",
                metric_name="Throttles",
                dimensions=fn,
                statistic="Sum",
                threshold=1,
            )
        alarm(
            "inlet-stopped",
            "The inlet has not run for 3 minutes: nobody is being admitted",
            namespace="AWS/Lambda",
            metric_name="Invocations",
            dimensions={"FunctionName": self.functions["inlet"].name},
            statistic="Sum",
            threshold=1,
            comparison="LessThanThreshold",
            periods=3,
            missing="breaching",
        )
        alarm(
            "api-5xx",
            "Queue API answered 5xx",
            namespace="AWS/ApiGateway",
            metric_name="5xx",
            dimensions={"ApiId": self.api.id, "Stage": "$default"},
            statistic="Sum",
            threshold=10,
        )
        alarm(
            "waiting",
            f"More than {s.waiting_alarm_threshold} people waiting",
            namespace=METRIC_NAMESPACE,
            metric_name="Waiting",
            dimensions={"Room": s.room_id},
            statistic="Maximum",
            threshold=s.waiting_alarm_threshold,
            periods=5,
        )


@dataclass(frozen=True)
class Grant:
    """One policy statement: `actions` on `resources` (an ARN, "*" or a list of ARNs), with
    `leading_keys` (the room table's `pk` values, `*` a wildcard) or another `condition`."""

    actions: list[str]
    resources: pulumi.Input[str] | pulumi.Input[list[str]] | list[pulumi.Output[str]]
    leading_keys: list[str] | None = None
    condition: dict[str, Any] | None = None

    def statement(self, resources: str | list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"Effect": "Allow", "Action": self.actions, "Resource": resources}
        if self.leading_keys is not None:
            # Every key the request touches must match (BatchGetItem too): ForAllValues.
            out["Condition"] = {
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": self.leading_keys}
            }
        elif self.condition is not None:
            out["Condition"] = self.condition
        return out


def _policy(grants: list[Grant]) -> pulumi.Output[str]:
    """An IAM policy document from `grants`, once their resources are known."""
    return pulumi.Output.all(*(g.resources for g in grants)).apply(
        lambda resources: json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [g.statement(r) for g, r in zip(grants, resources, strict=True)],
            }
        )
    )


def _require_layer() -> None:
    """A real preview or update uploads the layer: fail early, saying how to build it."""
    if os.environ.get("FLOODGATE_OFFLINE") != "1" and not LAYER_DIR.is_dir():
        raise RuntimeError(
            f"{LAYER_DIR.relative_to(ROOT)} is missing: run `make layer` before `pulumi preview` "
            "or `pulumi up` (it holds awscrt, which the KeyValueStore API's SigV4A needs)"
        )
