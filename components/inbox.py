"""The inbox: submissions CloudFront accepts into SQS, and a consumer that hands them to the
back office at its pace.

Accept path: CloudFront (the inbox function, functions/edge/inbox.js) -> an HTTP API route ->
SQS-SendMessage, an API Gateway service integration: no Lambda and nothing of the fleet. A body
above the inline limit: CloudFront -> the uploads bucket (an origin access control, SSE-KMS with
the inbox's key) -> the bucket's ObjectCreated event -> the same queue. Drain
path: Lambda's SQS event source, at most `consumer_concurrency` at once, the reference
consumer (functions/inbox/consumer.py) POSTing to `back_office_url`. The edge half (behaviours,
the function) is components/edge.py's, from `InboxWiring`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components import iam
from components.alarms import metric_alarm
from components.http_api import access_logs, lambda_route, origin_host
from components.lambda_function import lambda_function
from components.private_bucket import PrivateBucket, PrivateBucketArgs, cloudfront_may
from components.service_role import service_role
from planning.capacity import INBOX_RECEIPT_SUFFIX
from planning.settings import InboxSettings
from planning.settings.inbox import CONSUMER_BATCH

UPLOAD_PREFIX = "uploads/"
"""Where CloudFront writes an upload (functions/inbox/consumer.UPLOAD_PREFIX)."""

INBOX_CODE = Path(__file__).resolve().parent.parent / "functions/inbox"
RECEIPT_SECRET_KEY = "inbox.secret"
"""The KeyValueStore entry the inbox function reads its secret from."""
STATUS_ROUTE = "GET /inbox/receipts/{receipt}"


@dataclass(frozen=True)
class InboxWiring:
    """What the distribution needs: the API's host, the function's store, the paths."""

    api_domain: pulumi.Output[str]
    kvs_arn: pulumi.Output[str]
    path_patterns: list[str]
    inline_body_max_bytes: int
    body_max_bytes: int
    uploads_domain: pulumi.Output[str] | None = None
    """The uploads bucket's regional name (None: no uploads)."""
    admit: Callable[[pulumi.Output[str]], None] | None = None
    """Give it the distribution's ARN: only that distribution may write uploads and use the key
    for them (bucket and key policies, `AWS:SourceArn`)."""


@dataclass(frozen=True)
class InboxArgs:
    settings: InboxSettings
    alarm_topic_arn: pulumi.Input[str]
    log_group_retention_days: int
    protect: bool
    tags: dict[str, str]
    api_certificate_arn: pulumi.Input[str] = ""
    """Covers `settings.api_domain_name` (needed only with it)."""
    hosted_zone_id: str | None = None


def api_route(pattern: str) -> str:
    """The HTTP API route of a CloudFront path pattern: `/submit/*` -> `POST /submit/{proxy+}`
    (a greedy path variable, the only wildcard HTTP API routes take)."""
    if pattern.endswith("/*"):
        return f"POST {pattern[:-1]}{{proxy+}}"
    if "*" in pattern:
        raise ValueError(f"{pattern!r}: a wildcard is only allowed as the last path segment")
    return f"POST {pattern}"


class Inbox(pulumi.ComponentResource):
    """Queue, dead-letter queue, receipts, the accept API and the consumer.

    Named outputs: `queue`, `dlq`, `table`, `api`, `consumer`, `uploads` (the bucket, None
    without uploads), `edge` (what CloudFront needs).
    """

    queue: aws.sqs.Queue
    dlq: aws.sqs.Queue
    table: aws.dynamodb.Table
    api: aws.apigatewayv2.Api
    consumer: aws.lambda_.Function
    uploads: aws.s3.Bucket | None = None
    edge: InboxWiring

    def __init__(
        self, name: str, args: InboxArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("floodgate:inbox:Inbox", name, None, opts)
        self._name, self._args = f"{name}-inbox", args
        self._child = pulumi.ResourceOptions(parent=self)
        # A replaced queue, table or key is submissions lost: protected outside PR previews.
        self._stateful = pulumi.ResourceOptions(parent=self, protect=args.protect)
        self._account = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id
        self._declare_key()
        self._declare_queues()
        self._declare_receipts()
        admit = self._declare_uploads() if args.settings.uploads else None
        secret_arn, kvs = self._declare_receipt_secret()
        self._declare_functions(secret_arn)
        self._declare_api()
        self._declare_alarms()
        self.edge = InboxWiring(
            api_domain=origin_host(
                self._name,
                api=self.api,
                stage=self.stage,
                domain_name=args.settings.api_domain_name,
                certificate_arn=args.api_certificate_arn,
                hosted_zone_id=args.hosted_zone_id,
                tags=args.tags,
                opts=self._child,
            ),
            kvs_arn=kvs.arn,
            path_patterns=list(args.settings.path_patterns),
            inline_body_max_bytes=args.settings.inline_body_max_bytes,
            body_max_bytes=args.settings.body_max_bytes if admit else 0,
            uploads_domain=self.uploads.bucket_regional_domain_name if self.uploads else None,
            admit=admit,
        )
        self.register_outputs(
            {
                "queue_url": self.queue.url,
                "dlq_url": self.dlq.url,
                "table": self.table.name,
                "api": self.api.api_endpoint,
                "consumer": self.consumer.name,
                "uploads": self.uploads.bucket if self.uploads else None,
            }
        )

    def _declare_key(self) -> None:
        """The customer-managed key of the queues and the table, rotated yearly (KMS.4); the
        account's IAM policies say who may use it (the API's role, the consumer)."""
        self.key = aws.kms.Key(
            self._name,
            description="Floodgate inbox: submissions at rest",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=self._args.tags,
            opts=self._stateful,
        )

    def _declare_queues(self) -> None:
        """The queue and its dead-letter queue, which keeps longer: a standard queue's DLQ keeps
        each message's original enqueue time (SQS Developer Guide, dead-letter queues)."""
        s, name = self._args.settings, self._name
        encrypted = {"kms_master_key_id": self.key.arn, "kms_data_key_reuse_period_seconds": 300}
        self.dlq = aws.sqs.Queue(
            f"{name}-dlq",
            message_retention_seconds=s.dlq_retention_s,
            tags=self._args.tags,
            opts=self._stateful,
            **encrypted,
        )
        self.queue = aws.sqs.Queue(
            name,
            message_retention_seconds=s.retention_s,
            visibility_timeout_seconds=s.visibility_timeout_s,
            max_message_size=1_048_576,
            redrive_policy=self.dlq.arn.apply(
                lambda arn: json.dumps(
                    {"deadLetterTargetArn": arn, "maxReceiveCount": s.max_receive_count}
                )
            ),
            tags=self._args.tags,
            opts=self._stateful,
            **encrypted,
        )
        # Only the inbox queue may send to its DLQ; redrive moves messages back to it.
        aws.sqs.RedriveAllowPolicy(
            f"{name}-dlq",
            queue_url=self.dlq.url,
            redrive_allow_policy=self.queue.arn.apply(
                lambda arn: json.dumps({"redrivePermission": "byQueue", "sourceQueueArns": [arn]})
            ),
            opts=self._child,
        )

    def _declare_receipts(self) -> None:
        """The receipts table: one item per submission, expiring `receipt_days` after it was
        received (TTL `expires_at`)."""
        self.table = aws.dynamodb.Table(
            self._name,
            billing_mode="PAY_PER_REQUEST",
            hash_key="pk",
            attributes=[{"name": "pk", "type": "S"}],
            ttl={"attribute_name": "expires_at", "enabled": True},
            point_in_time_recovery={"enabled": True},
            server_side_encryption={"enabled": True, "kms_key_arn": self.key.arn},
            deletion_protection_enabled=self._args.protect,
            tags=self._args.tags,
            opts=self._stateful,
        )

    def _declare_uploads(self) -> Callable[[pulumi.Output[str]], None]:
        """The uploads bucket (private, SSE-KMS with the inbox's key, each body expiring
        `upload_expiry_days` after it was written), its ObjectCreated events into the queue,
        and what lets the distribution write it, once its ARN is known."""
        s, name = self._args.settings, self._name
        distribution, resolve = pulumi.deferred_output()
        uploads = PrivateBucket(
            f"{name}-uploads",
            PrivateBucketArgs(
                tags=self._args.tags,
                expire_after_days=s.upload_expiry_days,
                protect=self._args.protect,
                force_destroy=not self._args.protect,
                kms_key_arn=self.key.arn,
                grants=lambda bucket: pulumi.Output.all(bucket, distribution).apply(
                    lambda a: [
                        cloudfront_may(
                            "CloudFrontWritesUploads",
                            "s3:PutObject",
                            f"{a[0]}/{UPLOAD_PREFIX}*",
                            a[1],
                        )
                    ]
                ),
            ),
            opts=self._child,
        )
        self.uploads = uploads.bucket
        self._declare_key_policy(distribution)
        sent = aws.sqs.QueuePolicy(
            f"{name}-s3",
            queue_url=self.queue.url,
            policy=pulumi.Output.all(self.queue.arn, uploads.bucket.arn, self._account).apply(
                lambda a: iam.document([_s3_notifies(a[0], a[1], a[2])])
            ),
            opts=self._child,
        )
        # S3 checks the destination with a test event when this is set: the queue's policy and
        # the key's must let it send first.
        aws.s3.BucketNotification(
            f"{name}-uploads",
            bucket=uploads.bucket.id,
            queues=[
                {
                    "queue_arn": self.queue.arn,
                    "events": ["s3:ObjectCreated:*"],
                    "filter_prefix": UPLOAD_PREFIX,
                }
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[sent, self.key_policy]),
        )
        return resolve

    def _declare_key_policy(self, distribution: pulumi.Output[str]) -> None:
        """The key's policy with uploads: the account's IAM policies as the default policy
        allows, CloudFront writing uploads for this distribution only, and S3 sending the
        bucket's events into the encrypted queue (S3 User Guide, "Walkthrough: Configuring a
        bucket for notifications": kms:GenerateDataKey and kms:Decrypt)."""
        self.key_policy = aws.kms.KeyPolicy(
            self._name,
            key_id=self.key.id,
            policy=pulumi.Output.all(self._account, distribution).apply(
                lambda a: iam.document(_key_statements(a[0], a[1]))
            ),
            opts=self._child,
        )

    def _declare_receipt_secret(self) -> tuple[pulumi.Output[str], aws.cloudfront.KeyValueStore]:
        """The secret the edge tags and signs receipts with (256 random bits, a secret in
        state): in Secrets Manager for the consumer and the status route, in the inbox's own
        KeyValueStore for the edge function (a function reads one store)."""
        name, child = f"{self._name.removesuffix('-inbox')}{INBOX_RECEIPT_SUFFIX}", self._child
        value = random.RandomPassword(name, length=48, special=False, opts=child)
        secret = aws.secretsmanager.Secret(
            name,
            description="Floodgate inbox: the receipt secret the edge and the consumer share",
            tags=self._args.tags,
            opts=self._stateful,
        )
        aws.secretsmanager.SecretVersion(
            name, secret_id=secret.id, secret_string=value.result, opts=child
        )
        kvs = aws.cloudfront.KeyValueStore(
            name, comment="Floodgate inbox: the receipt secret", opts=self._stateful
        )
        aws.cloudfront.KeyvaluestoreKey(
            name,
            key_value_store_arn=kvs.arn,
            key=RECEIPT_SECRET_KEY,
            value=value.result,
            opts=child,
        )
        return secret.arn, kvs

    def _declare_functions(self, secret_arn: pulumi.Output[str]) -> None:
        """The status route's function and the consumer with its SQS event source (at most
        `consumer_concurrency` at once, each batch's failures reported apart)."""
        s, name, child = self._args.settings, self._name, self._child
        code = pulumi.AssetArchive(
            {
                f"inbox/{path.name}": pulumi.FileAsset(str(path))
                for path in sorted(INBOX_CODE.glob("*.py"))
            }
        )
        environment = {
            "FG_INBOX_TABLE": self.table.name,
            "FG_INBOX_DLQ_URL": self.dlq.url,
            "FG_BACK_OFFICE_URL": s.back_office_url or "",
            "FG_BACK_OFFICE_TIMEOUT_S": str(3 * s.processing_s),
            "FG_LEASE_S": str(s.consumer_timeout_s),
            "FG_RECEIPT_DAYS": str(s.receipt_days),
            "FG_RECEIPT_SECRET_ARN": secret_arn,
            "FG_INBOX_BUCKET": self.uploads.bucket if self.uploads else "",
        }
        table, key = self.table.arn, self.key.arn
        self.status = self._function(
            "status",
            10,
            code,
            environment,
            [
                iam.Grant(["dynamodb:GetItem"], table),
                iam.Grant(["secretsmanager:GetSecretValue"], secret_arn),
                iam.Grant(["kms:Decrypt"], key),
            ],
        )
        self.consumer = self._function(
            "consumer",
            s.consumer_timeout_s,
            code,
            environment,
            [
                iam.Grant(["dynamodb:GetItem", "dynamodb:UpdateItem"], table),
                iam.Grant(["secretsmanager:GetSecretValue"], secret_arn),
                iam.Grant(
                    ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                    self.queue.arn,
                ),
                iam.Grant(["sqs:SendMessage"], self.dlq.arn),
                iam.Grant(["kms:Decrypt", "kms:GenerateDataKey"], key),
                *self._upload_grants(),
            ],
        )
        aws.lambda_.EventSourceMapping(
            f"{name}-consumer",
            event_source_arn=self.queue.arn,
            function_name=self.consumer.arn,
            batch_size=CONSUMER_BATCH,
            function_response_types=["ReportBatchItemFailures"],
            scaling_config={"maximum_concurrency": s.consumer_concurrency},
            opts=child,
        )

    def _upload_grants(self) -> list[iam.Grant]:
        """The consumer reads an upload (GetObject covers HeadObject) and deletes it once done."""
        if self.uploads is None:
            return []
        objects = self.uploads.arn.apply(lambda arn: f"{arn}/{UPLOAD_PREFIX}*")
        return [iam.Grant(["s3:GetObject", "s3:DeleteObject"], objects)]

    def _function(
        self,
        label: str,
        timeout_s: int,
        code: pulumi.Archive,
        environment: dict[str, pulumi.Input[str]],
        grants: list[iam.Grant],
    ) -> aws.lambda_.Function:
        """One function with its log group and a role holding `grants` and its own logs."""
        return lambda_function(
            f"{self._name}-{label}",
            handler=f"inbox.handlers.{label if label == 'status' else 'consume'}",
            code=code,
            timeout_s=timeout_s,
            memory_mb=256,
            environment=environment,
            grants=grants,
            log_retention_days=self._args.log_group_retention_days,
            account=self._account,
            tags=self._args.tags,
            parent=self,
        )

    def _declare_api(self) -> None:
        """The accept API: one SQS-SendMessage route per inbox path (API Gateway's role may
        send to this queue only), the status route, a throttled `$default` stage."""
        s, name, child = self._args.settings, self._name, self._child
        self.api = aws.apigatewayv2.Api(
            name,
            protocol_type="HTTP",
            description="Floodgate inbox: submissions into SQS, receipts",
            # With a custom domain CloudFront uses it and the default endpoint is off: a post
            # straight to it would spend the accept throttle real submissions need.
            disable_execute_api_endpoint=s.api_domain_name is not None,
            tags=self._args.tags,
            opts=child,
        )
        role = service_role(
            f"{name}-send", "apigateway.amazonaws.com", self._args.tags, child, self._account
        )
        aws.iam.RolePolicy(
            f"{name}-send",
            role=role.id,
            policy=iam.policy(
                [
                    iam.Grant(["sqs:SendMessage"], self.queue.arn),
                    iam.Grant(["kms:GenerateDataKey", "kms:Decrypt"], self.key.arn),
                ]
            ),
            opts=child,
        )
        send = aws.apigatewayv2.Integration(
            f"{name}-send",
            api_id=self.api.id,
            integration_type="AWS_PROXY",
            integration_subtype="SQS-SendMessage",
            credentials_arn=role.arn,
            payload_format_version="1.0",
            request_parameters={
                "QueueUrl": self.queue.url,
                "MessageBody": "$request.body",
                "MessageAttributes": json.dumps(MESSAGE_ATTRIBUTES),
            },
            timeout_milliseconds=10_000,
            opts=child,
        )
        routes = [
            aws.apigatewayv2.Route(
                f"{name}-{pattern.strip('/*').replace('/', '-') or 'root'}",
                api_id=self.api.id,
                route_key=api_route(pattern),
                target=send.id.apply(lambda i: f"integrations/{i}"),
                opts=child,
            )
            for pattern in s.path_patterns
        ]
        routes.append(self._declare_status_route())
        logged = access_logs(
            f"{name}-access", f"/floodgate/{name}/api", self._args.log_group_retention_days,
            self._args.tags, child,
        )  # fmt: skip
        self.stage = aws.apigatewayv2.Stage(
            name,
            api_id=self.api.id,
            name="$default",
            auto_deploy=True,
            default_route_settings={
                "throttling_rate_limit": s.accept_per_s,
                "throttling_burst_limit": s.accept_per_s,
            },
            access_log_settings=logged,
            tags=self._args.tags,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=routes)),
        )

    def _declare_status_route(self) -> aws.apigatewayv2.Route:
        return lambda_route(
            f"{self._name}-status", api=self.api, route=STATUS_ROUTE, function=self.status,
            opts=self._child,
        )  # fmt: skip

    def _declare_alarms(self) -> None:
        """The oldest waiting submission older than `oldest_age_alarm_s`, and any submission in
        the dead-letter queue, each to the alarm topic."""
        s, name, args = self._args.settings, self._name, self._args
        common = {"topic_arn": args.alarm_topic_arn, "tags": args.tags, "opts": self._child}
        metric_alarm(
            f"{name}-oldest",
            f"A submission has waited over {s.oldest_age_alarm_s} s: the back office is "
            "behind or the consumer is failing",
            threshold=s.oldest_age_alarm_s,
            comparison="GreaterThanThreshold",
            evaluation_periods=2,
            namespace="AWS/SQS",
            metric_name="ApproximateAgeOfOldestMessage",
            dimensions={"QueueName": self.queue.name},
            statistic="Maximum",
            period=60,
            **common,
        )
        metric_alarm(
            f"{name}-dead-letters",
            "Submissions in the inbox's dead-letter queue: see why, then scripts/redrive.py",
            threshold=0,
            comparison="GreaterThanThreshold",
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": self.dlq.name},
            statistic="Maximum",
            period=60,
            **common,
        )


MESSAGE_ATTRIBUTES = {
    "receipt": {"DataType": "String", "StringValue": "${request.header.x-floodgate-receipt}"},
    "path": {"DataType": "String", "StringValue": "${request.path}"},
    "contentType": {"DataType": "String", "StringValue": "${request.header.content-type}"},
}
"""What the integration attaches to each message (HTTP API parameter mapping, `${...}`
interpolation): the receipt the edge tagged, the path, the content type the edge checked.
Every one is always set by the edge, and SQS refuses an empty attribute value."""


def _s3_notifies(queue_arn: str, bucket_arn: str, account: str) -> dict[str, Any]:
    """The uploads bucket, and no other, sends its events into the queue."""
    return {
        "Sid": "UploadsBucketNotifies",
        "Effect": "Allow",
        "Principal": {"Service": "s3.amazonaws.com"},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {
            "ArnEquals": {"aws:SourceArn": bucket_arn},
            "StringEquals": {"aws:SourceAccount": account},
        },
    }


def _key_statements(account: str, distribution_arn: str) -> list[dict[str, Any]]:
    """The inbox key's policy with uploads (the first statement is KMS's default policy)."""
    return [
        {
            "Sid": "AccountIamPolicies",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            # SSE-KMS through an origin access control (CloudFront Developer Guide, "Restrict
            # access to an Amazon S3 origin", SSE-KMS): the distribution encrypts what it PUTs.
            "Sid": "CloudFrontEncryptsUploads",
            "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"},
            "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
        },
        {
            "Sid": "S3SendsUploadEvents",
            "Effect": "Allow",
            "Principal": {"Service": "s3.amazonaws.com"},
            "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
            "Resource": "*",
        },
    ]
