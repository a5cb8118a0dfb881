"""A private, encrypted S3 bucket: every bucket in Floodgate is one of these."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam


@dataclass(frozen=True, kw_only=True)
class PrivateBucketArgs:
    tags: dict[str, str]
    expire_after_days: int | None = None
    """Delete objects after this many days (logs); None keeps them."""
    acl_writers: bool = False
    """CloudFront standard logs are written with ACLs, so that bucket keeps ObjectWriter
    ownership; every other bucket enforces bucket-owner ownership and ignores ACLs."""
    force_destroy: bool = False
    """Let `pulumi destroy` delete the bucket with its objects (ephemeral stacks only)."""
    grants: Callable[[pulumi.Output[str]], pulumi.Input[Sequence[dict[str, Any]]]] | None = None
    """Policy statements allowing the bucket's writers/readers, given the bucket ARN."""
    protect: bool = False
    """Protect the bucket from deletion and replacement (every stack but PR previews)."""
    kms_key_arn: pulumi.Input[str] | None = None
    """Encrypt with this customer-managed key (SSE-KMS, with a bucket key); None: SSE-S3."""


class PrivateBucket(pulumi.ComponentResource):
    """Bucket with all public access blocked and SSE-S3 default encryption, or SSE-KMS with
    `kms_key_arn`.

    SSE-S3 by default: ALB access logs only support SSE-S3 (AWS ELB docs).
    """

    bucket: aws.s3.Bucket
    policy: aws.s3.BucketPolicy
    ownership: aws.s3.BucketOwnershipControls
    """Whatever writes with ACLs (CloudFront logs) must wait for it."""

    def __init__(
        self, name: str, args: PrivateBucketArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("floodgate:private_bucket:PrivateBucket", name, None, opts)
        self._name, self._child = name, pulumi.ResourceOptions(parent=self)
        self.bucket = aws.s3.Bucket(
            name,
            force_destroy=args.force_destroy,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self._declare_lockdown(args.kms_key_arn)
        self.ownership = aws.s3.BucketOwnershipControls(
            name,
            bucket=self.bucket.id,
            rule={
                "object_ownership": "ObjectWriter" if args.acl_writers else "BucketOwnerEnforced"
            },
            opts=self._child,
        )
        if args.expire_after_days is not None:
            self._declare_expiry(args.expire_after_days)
        grants = args.grants(self.bucket.arn) if args.grants else []
        self.policy = aws.s3.BucketPolicy(
            name,
            bucket=self.bucket.id,
            policy=pulumi.Output.all(self.bucket.arn, grants).apply(
                lambda parts: iam.document(_statements(parts[0], parts[1]))
            ),
            opts=self._child,
        )
        self.register_outputs({"bucket": self.bucket.bucket})

    def _declare_lockdown(self, kms_key_arn: pulumi.Input[str] | None) -> None:
        """Every public access blocked; objects encrypted with S3-managed keys (SSE-S3), or
        with `kms_key_arn` (SSE-KMS), with a bucket key."""
        aws.s3.BucketPublicAccessBlock(
            self._name,
            bucket=self.bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=self._child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            self._name,
            bucket=self.bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}
                    if kms_key_arn is None
                    else {"sse_algorithm": "aws:kms", "kms_master_key_id": kms_key_arn},
                    "bucket_key_enabled": True,
                }
            ],
            opts=self._child,
        )

    def _declare_expiry(self, days: int) -> None:
        """Objects expire `days` after they were written."""
        aws.s3.BucketLifecycleConfiguration(
            self._name,
            bucket=self.bucket.id,
            rules=[
                {"id": "expire", "status": "Enabled", "filter": {}, "expiration": {"days": days}}
            ],
            opts=self._child,
        )


def cloudfront_may(sid: str, action: str, objects: str, distribution_arn: str) -> dict[str, Any]:
    """Origin access control: only the distribution `distribution_arn` may `action` on
    `objects` (an ARN pattern), by the `AWS:SourceArn` condition CloudFront signs with."""
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": action,
        "Resource": objects,
        "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
    }


def _statements(bucket_arn: str, grants: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bucket's grants, then HTTPS only for everyone."""
    deny_plain_http = {
        "Sid": "TlsOnly",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    return [*grants, deny_plain_http]
