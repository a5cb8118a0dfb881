"""AWS facts the settings are validated against, kept in one place with their sources.

Zone names are account-independent here because Floodgate pins zones by name in stack files;
the table lists each supported region's zones as AWS publishes them (ca-central-1 has no "c").
"""

from __future__ import annotations

# Regions Floodgate is tested for, with their Availability Zone names.
REGION_ZONES: dict[str, tuple[str, ...]] = {
    "ca-central-1": ("ca-central-1a", "ca-central-1b", "ca-central-1d"),
    "ca-west-1": ("ca-west-1a", "ca-west-1b", "ca-west-1c"),
    "us-east-1": tuple(f"us-east-1{z}" for z in "abcdef"),
    "us-east-2": ("us-east-2a", "us-east-2b", "us-east-2c"),
    "us-west-2": ("us-west-2a", "us-west-2b", "us-west-2c", "us-west-2d"),
    "eu-west-1": ("eu-west-1a", "eu-west-1b", "eu-west-1c"),
}

# Regions opened before August 2022 deliver ALB access logs as this Elastic Load Balancing
# account; newer regions use the logdelivery.elasticloadbalancing.amazonaws.com principal.
ELB_LOG_ACCOUNTS: dict[str, str] = {
    "ca-central-1": "985666609251",
    "us-east-1": "127311923021",
    "us-east-2": "033677994240",
    "us-west-2": "797873946194",
    "eu-west-1": "156460612806",
}

# ALB security policies that allow only TLS 1.2 and 1.3 with forward secrecy.
ALLOWED_ALB_TLS_POLICIES: tuple[str, ...] = (
    "ELBSecurityPolicy-TLS13-1-2-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
    "ELBSecurityPolicy-TLS13-1-3-2021-06",
    "ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04",
)

# Origin statuses the stack turns into the high-demand page (custom error responses), a subset
# of the codes CloudFront lets a custom error response name: 400, 403, 404, 405, 414, 416,
# 500, 501, 502, 503, 504 (CloudFront Developer Guide, "Create a custom error page for
# specific HTTP status codes"). 501 is not overload; 4xx are the portal's own answers.
FAILOVER_STATUS_CODES: tuple[int, ...] = (500, 502, 503, 504)
CLOUDFRONT_ERROR_CODES: tuple[int, ...] = (400, 403, 404, 405, 414, 416, 500, 501, 502, 503, 504)
# Errors CloudFront may cache for the error-caching minimum TTL (10 s by default): the guide
# says it honours no-store, no-cache and private only for 404, 410, 414 and 501, and elsewhere
# that it caches 400, 403 and 405 when the origin sends max-age; 416 is never cached. A custom
# error response with only ErrorCachingMinTTL 0 stops it either way.
# https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/custom-error-pages-expiration.html
NEVER_CACHED_ERRORS: tuple[int, ...] = (400, 403, 405)

# WAFv2 rate-based rules: limit per evaluation window, minimum 10 (lowered from 100 in 2024).
WAF_RATE_LIMIT_MIN = 10
WAF_RATE_LIMIT_MAX = 2_000_000_000
WAF_EVALUATION_WINDOWS_S: tuple[int, ...] = (60, 120, 300, 600)


# CloudFront origin settings ranges (seconds / attempts) accepted by the API.
CLOUDFRONT_CONNECTION_ATTEMPTS = (1, 3)
CLOUDFRONT_CONNECTION_TIMEOUT_S = (1, 10)
CLOUDFRONT_READ_TIMEOUT_S = (1, 60)

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip

# DynamoDB's default table-level throughput quota (read and write units per second, on-demand):
# warm throughput cannot exceed it. Raise it with Service Quotas before asking for more.
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html
DDB_TABLE_QUOTA_UNITS_PER_S = 40_000
# A new on-demand table serves 4,000 writes/s and 12,000 reads/s before it adapts; warm
# throughput lifts that (DynamoDB developer guide, warm throughput).
DDB_NEW_TABLE_WRITES_PER_S, DDB_NEW_TABLE_READS_PER_S = 4_000, 12_000

# One partition serves at most 3,000 read units and 1,000 write units a second; an eventually
# consistent read of an item up to 4 KB is half a unit, and every item of a BatchGetItem counts.
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html
DDB_PARTITION_READ_UNITS_PER_S = 3_000
DDB_EVENTUAL_READ_UNITS = 0.5

# Lambda: 1,000 concurrent executions per region by default, and at least 100 must stay
# unreserved (Lambda quotas; PutFunctionConcurrency refuses to go below).
LAMBDA_DEFAULT_CONCURRENCY = 1_000
LAMBDA_MIN_UNRESERVED = 100

TAGS_PER_RESOURCE = 50
"""User-defined tags per resource (AWS Tagging Best Practices, "Tag naming limits": 50)."""

INSTANCE_FAMILIES = frozenset(
    [
        "t3",
        "t3a",
        "t4g",
        "m5",
        "m5a",
        "m5n",
        "m6i",
        "m6a",
        "m6g",
        "m6in",
        "m7i",
        "m7i-flex",
        "m7a",
        "m7g",
        "m8g",
        "c5",
        "c5a",
        "c5n",
        "c6i",
        "c6a",
        "c6g",
        "c6gn",
        "c6in",
        "c7i",
        "c7i-flex",
        "c7a",
        "c7g",
        "c7gn",
        "c8g",
        "r5",
        "r5a",
        "r5n",
        "r6i",
        "r6a",
        "r6g",
        "r7i",
        "r7a",
        "r7g",
        "r8g",
        "g5",
        "g6",
    ]
)
"""EC2 families a web fleet may run on (general purpose, compute, memory, and the G GPU families
of the EC2 instance types list): a name outside it is a typo (m99.large was accepted)."""
INSTANCE_SIZES = frozenset(
    [
        "nano",
        "micro",
        "small",
        "medium",
        "large",
        "xlarge",
        "2xlarge",
        "4xlarge",
        "8xlarge",
        "9xlarge",
        "12xlarge",
        "16xlarge",
        "18xlarge",
        "24xlarge",
        "32xlarge",
        "48xlarge",
        "metal",
    ]
)
"""EC2 size names ("Amazon EC2 instance types", sizes within a family)."""

# CloudFront Origin Shield: the Regions it runs in, and the one AWS recommends for an origin in
# each Region (the same Region where Origin Shield runs there).
# https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/origin-shield.html
ORIGIN_SHIELD_REGIONS: tuple[str, ...] = (
    "us-east-2", "us-east-1", "us-west-2", "ap-south-1", "ap-northeast-2", "ap-southeast-1",
    "ap-southeast-2", "ap-northeast-1", "eu-central-1", "eu-west-1", "eu-west-2", "sa-east-1",
)  # fmt: skip
ORIGIN_SHIELD_FOR: dict[str, str] = {
    **{region: region for region in ORIGIN_SHIELD_REGIONS},
    "ca-central-1": "us-east-1",
    "us-west-1": "us-west-2",
    "af-south-1": "eu-west-1",
    "ap-east-1": "ap-southeast-1",
    "eu-south-1": "eu-central-1",
    "eu-west-3": "eu-west-2",
    "eu-north-1": "eu-west-2",
    "me-south-1": "ap-south-1",
}
# Regional edge caches, the layer between edge locations and the origin: without Origin Shield
# each asks the origin for an object on its own (CloudFront Developer Guide, "How CloudFront
# works with regional edge caches": 13 of them). With Origin Shield, one asks.
REGIONAL_EDGE_CACHES = 13

S3_PUT_MAX_BYTES = 5 * 1_073_741_824
"""The largest object one PutObject uploads: 5 GiB (S3 User Guide, "Uploading objects")."""
# Amazon SQS quotas (SQS Developer Guide, "Amazon SQS message quotas"; SetQueueAttributes).
SQS_MESSAGE_MAX_BYTES = 1_048_576
"""A message, body and attributes together: 1 MiB (raised from 256 KiB in August 2025)."""
SQS_RETENTION_S = (60, 1_209_600)
"""MessageRetentionPeriod: one minute to 14 days."""
SQS_VISIBILITY_TIMEOUT_S = (0, 43_200)
"""VisibilityTimeout: 0 s to 12 hours."""
SQS_MAX_RECEIVE_COUNT = (1, 1_000)
"""A redrive policy's maxReceiveCount."""
SQS_MOVE_MAX_PER_S = 500
"""StartMessageMoveTask's MaxNumberOfMessagesPerSecond at most (SQS API Reference)."""
# Lambda's SQS event source (Lambda Developer Guide, "Using Lambda with Amazon SQS").
ESM_MAX_CONCURRENCY = (2, 1_000)
"""ScalingConfig.MaximumConcurrency: 2 to 1,000 concurrent invocations per event source."""
ESM_BATCH_SIZE = (1, 10_000)
"""BatchSize for a standard queue (above 10 it needs a batching window)."""
LAMBDA_TIMEOUT_S = (1, 900)
"""A function's timeout."""
DDB_TTL_DAYS_MAX = 365 * 5
"""Floodgate's guard: receipts kept five years at most (DynamoDB TTL takes any epoch time)."""
