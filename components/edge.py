"""CloudFront in front of the ALB, WAF on it, and failover to a static high-demand page."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pulumi
import pulumi_aws as aws

from components.admission import EdgeWiring
from components.load_balancer import ORIGIN_SECRET_HEADER
from components.private_bucket import PrivateBucket, PrivateBucketArgs
from planning.settings import EdgeSettings, WafSettings

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
PAGES_DIR = FUNCTIONS_DIR / "pages"
FAILOVER_PAGE_FUNCTION = FUNCTIONS_DIR / "edge/failover_page.js"
GATE_FUNCTION = FUNCTIONS_DIR / "edge/gate.js"
HIGH_DEMAND_PAGE = "/high-demand/index.html"

# AWS-managed policies (fixed ids, same in every account).
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
SECURITY_HEADERS = "67f7725c-6f97-4210-82d7-5512b31e9d03"

ALB_ORIGIN, PAGES_ORIGIN, PORTAL_GROUP = "alb", "high-demand-pages", "portal"
QUEUE_ORIGIN = "queue-api"
READ_METHODS = ["GET", "HEAD", "OPTIONS"]
ALL_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
MANAGED_RULE_GROUPS = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet")


@dataclass(frozen=True, kw_only=True)
class EdgeArgs:
    settings: EdgeSettings
    waf: WafSettings
    origin_domain_name: str
    origin_secret: pulumi.Input[str]
    us_east_1: aws.Provider
    """WAF for CloudFront (scope CLOUDFRONT) exists only in us-east-1."""
    admission: EdgeWiring | None = None
    """The waiting room: gate on the default behaviour, /queue/* to its API."""
    tags: dict[str, str]
    force_destroy_logs: bool = False
    """Ephemeral stacks: destroy deletes the log bucket with its logs."""


class Edge(pulumi.ComponentResource):
    """Distribution: HTTPS-only to origin, TLS 1.2+ viewers, fails over to S3 on origin 5xx."""

    distribution: aws.cloudfront.Distribution
    web_acl: aws.wafv2.WebAcl
    pages_bucket: aws.s3.Bucket

    def __init__(
        self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("floodgate:edge:Edge", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        s, tags = args.settings, args.tags

        distribution_arn, resolve_distribution_arn = pulumi.deferred_output()
        pages = PrivateBucket(
            f"{name}-pages",
            PrivateBucketArgs(
                tags=tags,
                grants=lambda bucket_arn: pulumi.Output.all(bucket_arn, distribution_arn).apply(
                    lambda a: [_cloudfront_read(a[0], a[1])]
                ),
            ),
            opts=child,
        )
        self.pages_bucket = pages.bucket
        for path in sorted(p for p in PAGES_DIR.rglob("*") if p.is_file()):
            key = path.relative_to(PAGES_DIR).as_posix()
            aws.s3.BucketObjectv2(
                f"{name}-page-{key.replace('/', '-')}",
                bucket=pages.bucket.id,
                key=key,
                source=pulumi.FileAsset(str(path)),
                content_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
                cache_control="max-age=60",
                tags=tags,
                opts=child,
            )
        logs = PrivateBucket(
            f"{name}-logs",
            PrivateBucketArgs(
                tags=tags,
                expire_after_days=s.log_retention_days,
                acl_writers=True,
                force_destroy=args.force_destroy_logs,
            ),
            opts=child,
        )

        oac = aws.cloudfront.OriginAccessControl(
            f"{name}-pages",
            description="CloudFront reads the high-demand pages",
            origin_access_control_origin_type="s3",
            signing_behavior="always",
            signing_protocol="sigv4",
            opts=child,
        )
        static = aws.cloudfront.CachePolicy(
            f"{name}-static",
            comment="Long-lived static assets",
            min_ttl=0,
            default_ttl=s.static_ttl_s,
            max_ttl=31_536_000,  # one year, the CloudFront maximum
            parameters_in_cache_key_and_forwarded_to_origin={
                "cookies_config": {"cookie_behavior": "none"},
                "headers_config": {"header_behavior": "none"},
                # Versioned asset URLs (?v=hash) must reach the cache key.
                "query_strings_config": {"query_string_behavior": "all"},
                "enable_accept_encoding_brotli": True,
                "enable_accept_encoding_gzip": True,
            },
            opts=child,
        )
        self.web_acl = _web_acl(
            name, args.waf, tags, pulumi.ResourceOptions(parent=self, provider=args.us_east_1)
        )

        # After a failover S3 is asked for the viewer's own path and answers 403; this viewer-
        # response function turns that into a redirect to the page (see the function's header).
        failover_page = aws.cloudfront.Function(
            f"{name}-failover-page",
            name=f"{name}-failover-page",
            runtime="cloudfront-js-2.0",
            code=FAILOVER_PAGE_FUNCTION.read_text(encoding="utf-8"),
            comment="Redirect S3 403/404 after origin failover to the high-demand page",
            publish=True,
            opts=child,
        )

        gate = queue_cache = None
        queue_origins: list[aws.cloudfront.DistributionOriginArgsDict] = []
        queue_behaviours: list[aws.cloudfront.DistributionOrderedCacheBehaviorArgsDict] = []
        if args.admission is not None:
            gate = aws.cloudfront.Function(
                f"{name}-gate",
                name=f"{name}-gate",
                runtime="cloudfront-js-2.0",
                code=GATE_FUNCTION.read_text(encoding="utf-8"),
                comment="Waiting-room gate: admission token required while the room queues",
                key_value_store_associations=[args.admission.kvs_arn],
                publish=True,
                opts=child,
            )
            queue_origins.append(
                {
                    "origin_id": QUEUE_ORIGIN,
                    "domain_name": args.admission.api_domain,
                    "custom_origin_config": _https_origin(),
                }
            )
            # Honours the API's Cache-Control: /queue/room is public for 2 s, the rest private.
            queue_cache = aws.cloudfront.CachePolicy(
                f"{name}-queue",
                comment="Queue API: origin Cache-Control, at most 5 s",
                min_ttl=0,
                default_ttl=0,
                max_ttl=5,
                parameters_in_cache_key_and_forwarded_to_origin={
                    "cookies_config": {"cookie_behavior": "none"},
                    "headers_config": {"header_behavior": "none"},
                    "query_strings_config": {"query_string_behavior": "none"},
                    "enable_accept_encoding_gzip": True,
                },
                opts=child,
            )

        def behaviour(
            pattern: str,
            origin: str,
            methods: list[str],
            cache: pulumi.Input[str],
            forward_viewer: bool,
        ) -> aws.cloudfront.DistributionOrderedCacheBehaviorArgsDict:
            return {
                "path_pattern": pattern,
                "target_origin_id": origin,
                "allowed_methods": methods,
                "cached_methods": ["GET", "HEAD"],
                "viewer_protocol_policy": "redirect-to-https",
                "compress": True,
                "cache_policy_id": cache,
                "origin_request_policy_id": ALL_VIEWER_EXCEPT_HOST if forward_viewer else None,
                "response_headers_policy_id": SECURITY_HEADERS,
                "function_associations": [
                    *(
                        [{"event_type": "viewer-request", "function_arn": gate.arn}]
                        if gate is not None and pattern == "*"
                        else []
                    ),
                    *(
                        [{"event_type": "viewer-response", "function_arn": failover_page.arn}]
                        if origin == PORTAL_GROUP
                        else []
                    ),
                ],
            }

        if queue_cache is not None:
            queue_behaviours = [
                behaviour("/queue/*", QUEUE_ORIGIN, ALL_METHODS, queue_cache.id, True),
                behaviour("/waiting-room/*", PAGES_ORIGIN, READ_METHODS, static.id, False),
            ]

        viewer_certificate: aws.cloudfront.DistributionViewerCertificateArgsDict = (
            {
                "acm_certificate_arn": s.certificate_arn,
                "ssl_support_method": "sni-only",
                "minimum_protocol_version": "TLSv1.2_2021",
            }
            if s.certificate_arn
            # The default *.cloudfront.net certificate ignores minimum_protocol_version.
            else {"cloudfront_default_certificate": True}
        )
        self.distribution = aws.cloudfront.Distribution(
            name,
            enabled=True,
            is_ipv6_enabled=True,
            http_version="http2and3",
            price_class=s.price_class,
            aliases=s.domain_names,
            web_acl_id=self.web_acl.arn,
            comment=f"{name}: portal behind Floodgate",
            origins=[
                {
                    "origin_id": ALB_ORIGIN,
                    "domain_name": args.origin_domain_name,
                    "connection_attempts": s.origin_connection_attempts,
                    "connection_timeout": s.origin_connection_timeout_s,
                    "custom_headers": [{"name": ORIGIN_SECRET_HEADER, "value": args.origin_secret}],
                    "custom_origin_config": _https_origin(
                        origin_read_timeout=s.origin_read_timeout_s, origin_keepalive_timeout=5
                    ),
                },
                {
                    "origin_id": PAGES_ORIGIN,
                    "domain_name": pages.bucket.bucket_regional_domain_name,
                    "origin_access_control_id": oac.id,
                },
                *queue_origins,
            ],
            origin_groups=[
                {
                    "origin_id": PORTAL_GROUP,
                    "failover_criteria": {"status_codes": s.failover_status_codes},
                    "members": [{"origin_id": ALB_ORIGIN}, {"origin_id": PAGES_ORIGIN}],
                }
            ],
            default_cache_behavior=cast(
                aws.cloudfront.DistributionDefaultCacheBehaviorArgsDict,
                {
                    k: v
                    for k, v in behaviour(
                        "*", PORTAL_GROUP, READ_METHODS, CACHING_DISABLED, True
                    ).items()
                    if k != "path_pattern"
                },
            ),
            ordered_cache_behaviors=[
                *queue_behaviours,
                behaviour("/high-demand/*", PAGES_ORIGIN, READ_METHODS, static.id, False),
                *(
                    behaviour(p, PORTAL_GROUP, READ_METHODS, static.id, False)
                    for p in s.static_path_patterns
                ),
                *(
                    behaviour(p, ALB_ORIGIN, ALL_METHODS, CACHING_DISABLED, True)
                    for p in s.write_path_patterns
                ),
            ],
            # Whatever still fails (writes, both origins down) gets the page, never a raw 5xx;
            # a short TTL brings people back to the origin as soon as it recovers.
            custom_error_responses=[
                {
                    "error_code": code,
                    "response_code": 503,
                    "response_page_path": HIGH_DEMAND_PAGE,
                    "error_caching_min_ttl": s.error_caching_ttl_s,
                }
                for code in s.failover_status_codes
            ],
            logging_config={
                "bucket": logs.bucket.bucket_domain_name,
                "prefix": "cloudfront/",
                "include_cookies": False,
            },
            restrictions={"geo_restriction": {"restriction_type": "none"}},
            viewer_certificate=viewer_certificate,
            tags=tags,
            opts=child,
        )
        resolve_distribution_arn(self.distribution.arn)
        self.register_outputs(
            {"domain_name": self.distribution.domain_name, "distribution_id": self.distribution.id}
        )


def _https_origin(**extra: Any) -> aws.cloudfront.DistributionOriginCustomOriginConfigArgsDict:
    """A custom origin reached over TLS 1.2 only; `extra` sets its timeouts (seconds)."""
    config = {
        "http_port": 80,
        "https_port": 443,
        "origin_protocol_policy": "https-only",
        "origin_ssl_protocols": ["TLSv1.2"],
        **extra,
    }
    return cast(aws.cloudfront.DistributionOriginCustomOriginConfigArgsDict, config)


def _cloudfront_read(bucket_arn: str, distribution_arn: str) -> dict[str, Any]:
    """Origin access control: only this distribution may read the pages."""
    return {
        "Sid": "CloudFrontReadsPages",
        "Effect": "Allow",
        "Principal": {"Service": "cloudfront.amazonaws.com"},
        "Action": "s3:GetObject",
        "Resource": f"{bucket_arn}/*",
        "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
    }


def _web_acl(
    name: str, waf: WafSettings, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> aws.wafv2.WebAcl:
    def visibility(metric: str) -> aws.wafv2.WebAclVisibilityConfigArgsDict:
        return {
            "cloudwatch_metrics_enabled": True,
            "metric_name": metric,
            "sampled_requests_enabled": True,
        }

    rules: list[aws.wafv2.WebAclRuleArgsDict] = [
        {
            "name": "per-ip-rate-limit",
            "priority": 0,
            "action": {"block": {"custom_response": {"response_code": 429}}},
            "statement": {
                "rate_based_statement": {
                    "limit": waf.rate_limit,
                    "aggregate_key_type": "IP",
                    "evaluation_window_sec": waf.evaluation_window_s,
                }
            },
            "visibility_config": visibility(f"{name}-rate-limit"),
        }
    ]
    for priority, group in enumerate(MANAGED_RULE_GROUPS, start=1):
        rules.append(
            {
                "name": group,
                "priority": priority,
                "override_action": {"none": {}},
                "statement": {
                    "managed_rule_group_statement": {"vendor_name": "AWS", "name": group}
                },
                "visibility_config": visibility(f"{name}-{group}"),
            }
        )
    return aws.wafv2.WebAcl(
        name,
        scope="CLOUDFRONT",
        default_action={"allow": {}},
        rules=rules,
        visibility_config=visibility(name),
        tags=tags,
        opts=opts,
    )
