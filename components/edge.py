"""CloudFront in front of the ALB, WAF on it, and the static high-demand page for what fails."""

from __future__ import annotations

import json
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pulumi
import pulumi_aws as aws

from components.admission import EdgeWiring
from components.inbox import InboxWiring
from components.private_bucket import PrivateBucket, PrivateBucketArgs, cloudfront_may
from functions.admission.room import ORIGIN_HEADER
from functions.admission.tokens import VISITOR_COOKIE
from planning import aws_facts
from planning.settings import EdgeSettings, WafSettings

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"
PAGES_DIR = FUNCTIONS_DIR / "pages"
GATE_FUNCTION = FUNCTIONS_DIR / "edge/gate.js"
INBOX_FUNCTION = FUNCTIONS_DIR / "edge/inbox.js"
HIGH_DEMAND_PAGE = "/high-demand/index.html"
EXACT_FILES = ("/favicon.ico", "/robots.txt")
"""The portal's files that pass the gate (gate.js BYPASS_FILES): kept at the edge."""

# AWS-managed policies (fixed ids, same in every account).
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
"""The origin's max-age within 1 s to a year (a day without one); no query string, cookie or
header in the key. Managed: it costs none of the account's 20 custom cache policies."""
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"
SECURITY_HEADERS = "67f7725c-6f97-4210-82d7-5512b31e9d03"

ALB_ORIGIN, PAGES_ORIGIN = "alb", "high-demand-pages"
PUBLIC_ORIGIN = "alb-shielded"
"""The ALB again, behind Origin Shield: the origin of what the edge caches from the ALB (public
pages, EXACT_FILES) when a shield is set."""
QUEUE_ORIGIN = "queue-api"
INBOX_ORIGIN = "inbox-api"
INBOX_HEADERS = ("Content-Type", "X-Floodgate-Receipt")
"""What the inbox's integration maps into the message: the content type the edge checked and
the receipt it tagged (functions/edge/inbox.js)."""
UPLOADS_ORIGIN = "inbox-uploads"
UPLOADS_PATH = "/inbox/uploads/"
UPLOAD_HEADERS = (
    "Content-Type",
    "X-Amz-Meta-Floodgate-Receipt",
    "X-Amz-Meta-Floodgate-Path",
    "X-Amz-Meta-Floodgate-Key",
)
"""What an upload's object keeps (S3 stores x-amz-meta-* as its metadata): the edge's tagged
receipt, the path and the key (functions/edge/inbox.js)."""
ROOM_PATH = "/queue/room"
"""The queue API's one answer that is the same for everyone (cached 2 s, shared)."""
READ_METHODS = ["GET", "HEAD", "OPTIONS"]
ALL_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
QUEUE_HEADERS = ("CloudFront-Viewer-Address", "Sec-Fetch-Site", "Origin")
"""Viewer headers the queue API's handlers read (functions/admission/handlers.py)."""
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
    inbox: InboxWiring | None = None
    """The inbox: its write paths to its API through the inbox function, /inbox/* its pages."""
    tags: dict[str, str]
    ephemeral: bool = False
    """PR previews: destroy deletes the log bucket with its logs, and nothing is protected."""


class Edge(pulumi.ComponentResource):
    """Distribution: HTTPS-only to origin, TLS 1.2+ viewers, fails over to S3 on origin 5xx."""

    distribution: aws.cloudfront.Distribution
    web_acl: aws.wafv2.WebAcl
    pages_bucket: aws.s3.Bucket
    gate_function: aws.cloudfront.Function | None = None
    """The viewer-request gate (None without a waiting room): it logs its failures."""

    def __init__(
        self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("floodgate:edge:Edge", name, None, opts)
        us_east_1 = pulumi.ResourceOptions(parent=self, provider=args.us_east_1)
        self._name, self._args = name, args
        distribution_arn, resolve_distribution_arn = pulumi.deferred_output()
        pages, logs = self._declare_buckets(name, args, distribution_arn)
        static = self._declare_static_policy()
        uploads = args.inbox is not None and args.inbox.uploads_domain is not None
        self.web_acl = _web_acl(name, args.waf, args.settings, uploads, args.tags, us_east_1)
        self._gate = self._declare_gate(name, args.admission)
        queue_origins, queue_behaviours = self._declare_queue_routes(
            name, args.admission, args.origin_secret
        )
        inbox_origins, inbox_behaviours = self._declare_inbox_routes(name, args.inbox)
        inbox_paths = set(args.inbox.path_patterns) if args.inbox else set()
        behaviour, s = self._behaviour, args.settings
        public = self._declare_public_policy() if s.public_page_patterns else None
        public_origin = PUBLIC_ORIGIN if s.origin_shield_region else ALB_ORIGIN
        ordered = [
            *queue_behaviours,
            *inbox_behaviours,
            behaviour("/high-demand/*", PAGES_ORIGIN, READ_METHODS, static, None),
            *(behaviour(p, ALB_ORIGIN, READ_METHODS, static, None) for p in s.static_path_patterns),
            *(
                behaviour(p, public_origin, READ_METHODS, public, None)
                for p in s.public_page_patterns
                if public is not None
            ),
            # They pass the gate (a browser asks for them on the waiting page too): kept at the
            # edge with no query string in the key, a queueing room sends none to the fleet.
            *(
                behaviour(p, public_origin, READ_METHODS, CACHING_OPTIMIZED, None)
                for p in EXACT_FILES
            ),
            *(
                behaviour(p, ALB_ORIGIN, ALL_METHODS, CACHING_DISABLED, ALL_VIEWER_EXCEPT_HOST)
                for p in s.write_path_patterns
                if p not in inbox_paths
            ),
        ]
        self.distribution = self._declare_distribution(
            [*self._origins(pages), *queue_origins, *inbox_origins], ordered, logs
        )
        resolve_distribution_arn(self.distribution.arn)
        if args.inbox is not None and args.inbox.admit is not None:
            args.inbox.admit(self.distribution.arn)
        self.register_outputs(
            {"domain_name": self.distribution.domain_name, "distribution_id": self.distribution.id}
        )

    def _declare_static_policy(self) -> pulumi.Output[str]:
        """The cache policy for long-lived static assets; returns its id. Versioned asset URLs
        (?v=hash) must reach the cache key."""
        return self._cache_policy(
            "static", "Long-lived static assets", (0, self._args.settings.static_ttl_s), "all"
        )

    def _declare_public_policy(self) -> pulumi.Output[str]:
        """Public pages: cached as the origin's Cache-Control says (max-age or s-maxage,
        stale-while-revalidate, stale-if-error), up to `public_page_max_ttl_s`; default TTL 0,
        so a page without max-age, or `private`/`no-store`, is never kept. No cookie or viewer
        header is in the key or reaches the origin (so no answer can be one visitor's, and
        CloudFront drops the origin's Set-Cookie); only the named query strings are."""
        s = self._args.settings
        return self._cache_policy(
            "public",
            "Public pages: the origin's Cache-Control, no cookies",
            (0, 0, s.public_page_max_ttl_s),
            s.public_page_query_strings or None,
        )

    def _cache_policy(
        self,
        suffix: str,
        comment: str,
        ttls_s: tuple[int, int] | tuple[int, int, int],
        queries: str | list[str] | None = None,
        cookies: list[str] | None = None,
    ) -> pulumi.Output[str]:
        """A cache policy `<name>-<suffix>`: (min, default[, max]) TTLs in seconds (max: a
        year, CloudFront's most), `queries` "all" or the names in the key (None: none),
        `cookies` the names in the key (None: none), no header; its id."""
        query: Any = (
            {"query_string_behavior": "none"}
            if queries is None
            else {"query_string_behavior": "all"}
            if queries == "all"
            else {"query_string_behavior": "whitelist", "query_strings": {"items": queries}}
        )
        cookie: Any = (
            {"cookie_behavior": "whitelist", "cookies": {"items": cookies}}
            if cookies
            else {"cookie_behavior": "none"}
        )
        return aws.cloudfront.CachePolicy(
            f"{self._name}-{suffix}",
            comment=comment,
            min_ttl=ttls_s[0],
            default_ttl=ttls_s[1],
            max_ttl=ttls_s[2] if len(ttls_s) == 3 else 31_536_000,
            parameters_in_cache_key_and_forwarded_to_origin={
                "cookies_config": cookie,
                "headers_config": {"header_behavior": "none"},
                "query_strings_config": query,
                "enable_accept_encoding_brotli": True,
                "enable_accept_encoding_gzip": True,
            },
            opts=pulumi.ResourceOptions(parent=self),
        ).id

    def _behaviour(
        self,
        pattern: str,
        origin: str,
        methods: list[str],
        cache: pulumi.Input[str],
        origin_request: pulumi.Input[str] | None,
        functions: list[aws.cloudfront.DistributionDefaultCacheBehaviorFunctionAssociationArgsDict]
        | None = None,
    ) -> aws.cloudfront.DistributionOrderedCacheBehaviorArgsDict:
        """One cache behaviour. Every path that reaches the ALB passes the gate, or the room
        can be walked around. No behaviour carries a Lambda@Edge: it would run on every request
        that misses the cache, in the Region of the viewer's regional edge cache, against that
        Region's concurrency (docs/architecture.md, "The edge carries the crowd")."""
        reaches_alb = origin in (ALB_ORIGIN, PUBLIC_ORIGIN)
        return {
            "path_pattern": pattern,
            "target_origin_id": origin,
            "allowed_methods": methods,
            "cached_methods": ["GET", "HEAD"],
            "viewer_protocol_policy": "redirect-to-https",
            "compress": True,
            "cache_policy_id": cache,
            "origin_request_policy_id": origin_request,
            "response_headers_policy_id": SECURITY_HEADERS,
            "function_associations": functions
            if functions is not None
            else self._gate
            if reaches_alb
            else [],
        }

    def _origins(self, pages: PrivateBucket) -> list[aws.cloudfront.DistributionOriginArgsDict]:
        """The ALB (with the origin secret), the same ALB behind Origin Shield when a shield is
        set, and the pages bucket (through an origin access control)."""
        s = self._args.settings
        alb: aws.cloudfront.DistributionOriginArgsDict = {
            "origin_id": ALB_ORIGIN,
            "domain_name": self._args.origin_domain_name,
            "connection_attempts": s.origin_connection_attempts,
            "connection_timeout": s.origin_connection_timeout_s,
            "custom_headers": [{"name": ORIGIN_HEADER, "value": self._args.origin_secret}],
            "custom_origin_config": _https_origin(
                origin_read_timeout=s.origin_read_timeout_s, origin_keepalive_timeout=5
            ),
        }
        # The same ALB behind Origin Shield, for what the edge caches from it (public pages,
        # favicon.ico, robots.txt): their misses from every regional edge cache reach the origin
        # once. Every other path skips the extra hop (and its per-request charge).
        shielded: list[aws.cloudfront.DistributionOriginArgsDict] = (
            [
                {
                    **alb,
                    "origin_id": PUBLIC_ORIGIN,
                    "origin_shield": {
                        "enabled": True,
                        "origin_shield_region": s.origin_shield_region,
                    },
                }
            ]
            if s.origin_shield_region
            else []
        )
        return [
            alb,
            *shielded,
            self._s3_origin(
                PAGES_ORIGIN,
                "pages",
                "CloudFront reads the high-demand pages",
                pages.bucket.bucket_regional_domain_name,
            ),
        ]

    def _declare_distribution(
        self,
        origins: list[aws.cloudfront.DistributionOriginArgsDict],
        ordered: list[aws.cloudfront.DistributionOrderedCacheBehaviorArgsDict],
        logs: PrivateBucket,
    ) -> aws.cloudfront.Distribution:
        """The distribution: the ALB behind the gate by default, `ordered` before it, and for
        any path the origin fails (a failover status, no connection, a timeout) the high-demand
        page from the pages bucket, through the distribution's custom error responses."""
        name, s = self._name, self._args.settings
        everything = self._behaviour(
            "*", ALB_ORIGIN, READ_METHODS, CACHING_DISABLED, ALL_VIEWER_EXCEPT_HOST
        )
        default = {k: v for k, v in everything.items() if k != "path_pattern"}
        return aws.cloudfront.Distribution(
            name,
            enabled=True,
            is_ipv6_enabled=True,
            http_version="http2and3",
            price_class=s.price_class,
            aliases=s.domain_names,
            web_acl_id=self.web_acl.arn,
            comment=f"{name}: portal behind Floodgate",
            origins=origins,
            default_cache_behavior=cast(
                aws.cloudfront.DistributionDefaultCacheBehaviorArgsDict, default
            ),
            ordered_cache_behaviors=ordered,
            custom_error_responses=_high_demand_responses(s),
            logging_config={
                "bucket": logs.bucket.bucket_domain_name,
                "prefix": "cloudfront/",
                "include_cookies": False,
            },
            restrictions={"geo_restriction": {"restriction_type": "none"}},
            viewer_certificate=_viewer_certificate(s.certificate_arn),
            tags=self._args.tags,
            # CloudFront refuses a log bucket whose ACLs are not enabled yet.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs.ownership]),
        )

    def _declare_buckets(
        self, name: str, args: EdgeArgs, distribution_arn: pulumi.Output[str]
    ) -> tuple[PrivateBucket, PrivateBucket]:
        """The pages bucket (with every page in functions/pages) and the standard-log bucket."""
        child = pulumi.ResourceOptions(parent=self)
        pages = PrivateBucket(
            f"{name}-pages",
            PrivateBucketArgs(
                tags=args.tags,
                grants=lambda bucket_arn: pulumi.Output.all(bucket_arn, distribution_arn).apply(
                    lambda a: [
                        cloudfront_may("CloudFrontReadsPages", "s3:GetObject", f"{a[0]}/*", a[1])
                    ]
                ),
                protect=not args.ephemeral,
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
                content_type=page_content_type(path.name),
                # The high-demand page also answers failed-over deep paths: a browser must not
                # keep it for /apply once the portal is back.
                cache_control="no-store" if key.startswith("high-demand/") else "max-age=60",
                tags=args.tags,
                opts=child,
            )
        logs = PrivateBucket(
            f"{name}-logs",
            PrivateBucketArgs(
                tags=args.tags,
                expire_after_days=args.settings.access_log_expiry_days,
                acl_writers=True,
                force_destroy=args.ephemeral,
                protect=not args.ephemeral,
            ),
            opts=child,
        )
        return pages, logs

    def _declare_gate(
        self, name: str, admission: EdgeWiring | None
    ) -> list[aws.cloudfront.DistributionDefaultCacheBehaviorFunctionAssociationArgsDict]:
        """The waiting room at the edge, from one file (gate.js) reading the room's
        KeyValueStore: the gate on viewer requests, and on viewer responses the session stamp
        that lets people already inside carry on when the room starts queueing."""
        if admission is None:
            return []
        code = gate_code()
        associations: list[
            aws.cloudfront.DistributionDefaultCacheBehaviorFunctionAssociationArgsDict
        ] = []
        for suffix, event, comment in (
            ("gate", "viewer-request", "Waiting-room gate: a token or session while it queues"),
            ("session", "viewer-response", "Waiting-room sessions: stamped while the room is open"),
        ):
            function = aws.cloudfront.Function(
                f"{name}-{suffix}",
                name=f"{name}-{suffix}",
                runtime="cloudfront-js-2.0",
                code=code,
                comment=comment,
                key_value_store_associations=[admission.kvs_arn],
                publish=True,
                opts=pulumi.ResourceOptions(parent=self),
            )
            associations.append({"event_type": event, "function_arn": function.arn})
            if event == "viewer-request":
                self.gate_function = function
        return associations

    def _declare_queue_routes(
        self,
        name: str,
        admission: EdgeWiring | None,
        origin_secret: pulumi.Input[str],
    ) -> tuple[
        list[aws.cloudfront.DistributionOriginArgsDict],
        list[aws.cloudfront.DistributionOrderedCacheBehaviorArgsDict],
    ]:
        """/queue/* to the room's API, by its custom domain where the stack has one (its
        execute-api endpoint is then off), with the origin secret its handlers also require
        (PR previews keep the endpoint public), and /waiting-room/* to the pages bucket."""
        if admission is None:
            return [], []
        queue_cache = self._queue_cache_policy("queue", (VISITOR_COOKIE,))
        room_cache = self._queue_cache_policy("queue-room", ())
        # What the handlers read: the visitor cookie, the viewer's address (CloudFront adds
        # it only when a policy names it), Sec-Fetch-Site and Origin (cross-site joins); never
        # Host, which API Gateway needs to be its own.
        queue_request = self._origin_request_policy(
            "queue", "Queue API: cookies, viewer address, fetch metadata", QUEUE_HEADERS, "all"
        )
        origins: list[aws.cloudfront.DistributionOriginArgsDict] = [
            {
                "origin_id": QUEUE_ORIGIN,
                "domain_name": admission.api_domain,
                "custom_headers": [{"name": ORIGIN_HEADER, "value": origin_secret}],
                "custom_origin_config": _https_origin(),
            }
        ]
        return origins, [
            self._behaviour(ROOM_PATH, QUEUE_ORIGIN, READ_METHODS, room_cache, queue_request.id),
            self._behaviour("/queue/*", QUEUE_ORIGIN, ALL_METHODS, queue_cache, queue_request.id),
            # One copy per page whatever `?return=…&lang=…` (the page's script reads them).
            self._behaviour("/waiting-room/*", PAGES_ORIGIN, READ_METHODS, CACHING_OPTIMIZED, None),
        ]

    def _declare_inbox_routes(
        self, name: str, inbox: InboxWiring | None
    ) -> tuple[
        list[aws.cloudfront.DistributionOriginArgsDict],
        list[aws.cloudfront.DistributionOrderedCacheBehaviorArgsDict],
    ]:
        """Each inbox path to the inbox's API through the inbox function (viewer request: the
        post checked and its receipt tagged; viewer response: 202 and the receipt), receipts
        to the same API uncached, and /inbox/* (the confirmation page) to the pages bucket.
        Nothing on these paths reaches the ALB."""
        if inbox is None:
            return [], []
        code = inbox_code(inbox.inline_body_max_bytes, inbox.body_max_bytes, inbox.path_patterns)
        associations: list[
            aws.cloudfront.DistributionDefaultCacheBehaviorFunctionAssociationArgsDict
        ] = []
        for suffix, event in (
            ("inbox-accept", "viewer-request"),
            ("inbox-answer", "viewer-response"),
        ):
            function = aws.cloudfront.Function(
                f"{name}-{suffix}",
                name=f"{name}-{suffix}",
                runtime="cloudfront-js-2.0",
                code=code,
                comment="Inbox: check a post, tag its receipt"
                if event == "viewer-request"
                else "Inbox: 202 and the receipt once SQS took it",
                key_value_store_associations=[inbox.kvs_arn],
                publish=True,
                opts=pulumi.ResourceOptions(parent=self),
            )
            associations.append({"event_type": event, "function_arn": function.arn})
        forwarded = self._origin_request_policy(
            "inbox", "Inbox API: the content type and the receipt the edge tagged", INBOX_HEADERS
        )
        origins: list[aws.cloudfront.DistributionOriginArgsDict] = [
            {
                "origin_id": INBOX_ORIGIN,
                "domain_name": inbox.api_domain,
                "custom_origin_config": _https_origin(),
            }
        ]
        accept = [
            self._behaviour(
                p, INBOX_ORIGIN, ALL_METHODS, CACHING_DISABLED, forwarded.id, associations
            )
            for p in inbox.path_patterns
        ]
        if inbox.uploads_domain is not None:
            origins.append(
                self._s3_origin(
                    UPLOADS_ORIGIN,
                    "inbox-uploads",
                    "CloudFront writes inbox uploads",
                    inbox.uploads_domain,
                )
            )
            written = self._origin_request_policy(
                "inbox-uploads", "Inbox uploads: the metadata the edge set", UPLOAD_HEADERS
            )
            upload = f"{UPLOADS_PATH}*"
            accept.append(
                self._behaviour(
                    upload, UPLOADS_ORIGIN, ALL_METHODS, CACHING_DISABLED, written.id, associations
                )
            )
        return origins, [
            *accept,
            self._behaviour(
                "/inbox/receipts/*", INBOX_ORIGIN, READ_METHODS, CACHING_DISABLED, None
            ),
            self._behaviour("/inbox/*", PAGES_ORIGIN, READ_METHODS, CACHING_OPTIMIZED, None),
        ]

    def _s3_origin(
        self, origin_id: str, suffix: str, description: str, domain: pulumi.Output[str]
    ) -> aws.cloudfront.DistributionOriginArgsDict:
        """A bucket reached through its own origin access control, which signs every request
        (SigV4), PUTs included, and works with SSE-KMS (CloudFront Developer Guide, "Restrict
        access to an Amazon S3 origin")."""
        oac = aws.cloudfront.OriginAccessControl(
            f"{self._name}-{suffix}",
            description=description,
            origin_access_control_origin_type="s3",
            signing_behavior="always",
            signing_protocol="sigv4",
            opts=pulumi.ResourceOptions(parent=self),
        )
        return {"origin_id": origin_id, "domain_name": domain, "origin_access_control_id": oac.id}

    def _origin_request_policy(
        self, suffix: str, comment: str, headers: tuple[str, ...], cookies: str = "none"
    ) -> aws.cloudfront.OriginRequestPolicy:
        """What an API origin hears: `headers` (never Host, which API Gateway needs to be its
        own), cookies `all` or `none`, no query string."""
        return aws.cloudfront.OriginRequestPolicy(
            f"{self._name}-{suffix}",
            comment=comment,
            cookies_config={"cookie_behavior": cookies},
            headers_config={"header_behavior": "whitelist", "headers": {"items": list(headers)}},
            query_strings_config={"query_string_behavior": "none"},
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _queue_cache_policy(self, suffix: str, cookies: tuple[str, ...]) -> pulumi.Output[str]:
        """The queue API's Cache-Control, at most 5 s (/queue/room is public for 2 s, the rest
        private), keyed on `cookies`: the visitor's for every per-visitor route, so not even an
        error CloudFront caches can answer another visitor; none for the shared /queue/room."""
        shared = "per visitor" if cookies else "shared"
        return self._cache_policy(
            suffix, f"Queue API ({shared}): origin Cache-Control", (0, 0, 5), None, list(cookies)
        )


def page_content_type(name: str) -> str:
    """The Content-Type a page is uploaded with: JavaScript as RFC 9239 names it (Python's
    guess differs by version, and a plan must not), anything else as mimetypes guesses."""
    if name.endswith(".js"):
        return "text/javascript"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def inbox_code(inline_body_max_bytes: int, body_max_bytes: int, path_patterns: list[str]) -> str:
    """inbox.js as deployed: its limits (bytes) and paths set, then trimmed as `gate_code`
    trims (tests/edge/inbox_harness.mjs runs exactly this text)."""
    text = INBOX_FUNCTION.read_text(encoding="utf-8")
    for placeholder, value in (
        ("__INLINE_MAX__", str(inline_body_max_bytes)),
        ("__UPLOAD_MAX__", str(body_max_bytes)),
        ("__PATTERNS__", json.dumps(path_patterns)),
    ):
        text = text.replace(placeholder, value)
    lines = (line.strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//")) + "\n"


def gate_code() -> str:
    """gate.js as deployed: without its whole-line comments, indentation and blank lines, which
    document it in the repository but count against CloudFront Functions' 10 KB code limit
    (tests/edge/harness.mjs runs exactly this text; gate.js holds no multi-line literal)."""
    lines = (line.strip() for line in GATE_FUNCTION.read_text(encoding="utf-8").splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//")) + "\n"


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


BODY_SIZE_LABEL = "awswaf:managed:aws:core-rule-set:SizeRestrictions_Body"
"""Label the common rule set puts on bodies over 8 KB (AWS managed rule groups, baseline)."""


LIMITED_BODY, LIMITED_RETRY_S = "limited", 60
"""The page WAF answers an address over `waf.rate_limit` with (429, Retry-After)."""
LIMITED_PAGE = (
    '<!doctype html><html lang="en"><meta charset="utf-8"><title>Too many requests / Trop de '
    "requêtes</title><h1>Too many requests from your network</h1><p>Please wait a minute and "
    'try again.</p><h1 lang="fr">Trop de requêtes depuis votre réseau</h1><p lang="fr">Veuillez '
    "patienter une minute et réessayer.</p></html>"
)
UNCOUNTED = ("/queue/status", "/queue/room", "/waiting-room/", "/high-demand/")
"""Paths (with the static assets) counted against `asset_rate_limit`, not `rate_limit`: polls
and the room's pages."""
BUSY_BODY, JOIN_RETRY_AFTER_S = "busy", 60
"""The JSON body WAF answers a limited join with: the waiting page reads `retry_after_s`."""
JOIN_PATH = "/queue/join"


def _visibility(metric: str) -> aws.wafv2.WebAclVisibilityConfigArgsDict:
    """CloudWatch metrics and sampled requests under `metric`."""
    return {
        "cloudwatch_metrics_enabled": True,
        "metric_name": metric,
        "sampled_requests_enabled": True,
    }


def _join_rules(name: str, waf: WafSettings) -> list[aws.wafv2.WebAclRuleArgsDict]:
    """Per-IP rate on POST /queue/join (priority 4, after the managed groups count nothing
    away): 429 JSON with Retry-After, or a challenge. With `challenge` the waiting page itself is
    challenged on load (priority 5), so a browser holds a WAF token before it joins: a fetch
    cannot answer a challenge, and a request with a valid token passes a challenge rule as if
    counted (AWS WAF CAPTCHA and Challenge: token immunity time, 300 s by default)."""
    on_join: Any = {
        "byteMatchStatement": {
            "fieldToMatch": {"uriPath": {}},
            "positionalConstraint": "EXACTLY",
            "searchString": JOIN_PATH,
            "textTransformations": [{"priority": 0, "type": "NONE"}],
        }
    }
    rules: list[aws.wafv2.WebAclRuleArgsDict] = [
        {
            "name": "queue-join-rate",
            "priority": len(MANAGED_RULE_GROUPS) + 2,
            "action": _join_limited(waf),
            "statement": {
                "rate_based_statement": {
                    "limit": waf.join_rate_limit,
                    "aggregate_key_type": "IP",
                    "evaluation_window_sec": waf.evaluation_window_s,
                    "scope_down_statement": on_join,
                }
            },
            "visibility_config": _visibility(f"{name}-join-rate"),
        }
    ]
    if waf.join_limit_action == "challenge":
        rules.append(_waiting_page_challenge(name))
    return rules


def _join_limited(waf: WafSettings) -> Any:
    """Over the join rate: a challenge, or 429 with the busy JSON and Retry-After."""
    if waf.join_limit_action == "challenge":
        return {"challenge": {}}
    return _too_many(BUSY_BODY, JOIN_RETRY_AFTER_S)


def _too_many(body_key: str, retry_after_s: int) -> Any:
    """Block with 429, the custom body `body_key` and Retry-After (WAF allows any response
    header but content-type)."""
    return {
        "block": {
            "custom_response": {
                "response_code": 429,
                "custom_response_body_key": body_key,
                "response_headers": [{"name": "retry-after", "value": str(retry_after_s)}],
            }
        }
    }


def _waiting_page_challenge(name: str) -> aws.wafv2.WebAclRuleArgsDict:
    """Challenge the waiting page on load (priority 5), so the browser holds a token to join."""
    on_waiting_page: Any = {
        "byte_match_statement": {
            "field_to_match": {"uri_path": {}},
            "positional_constraint": "STARTS_WITH",
            "search_string": "/waiting-room/",
            "text_transformations": [{"priority": 0, "type": "NONE"}],
        }
    }
    return {
        "name": "waiting-page-challenge",
        "priority": len(MANAGED_RULE_GROUPS) + 3,
        "action": {"challenge": {}},
        "statement": on_waiting_page,
        "visibility_config": _visibility(f"{name}-waiting-challenge"),
    }


def _web_acl(
    name: str,
    waf: WafSettings,
    edge: EdgeSettings,
    uploads: bool,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.wafv2.WebAcl:
    """Per-IP rate limit, the room's join rules, AWS's common and known-bad-inputs rule sets,
    the large-body rule (`uploads`: the inbox's upload path too), and logging."""
    rules = [
        *_rate_rules(name, waf, edge),
        *_join_rules(name, waf),
        *_managed_rules(name),
        *_large_body_rule(name, edge, uploads),
    ]
    acl = aws.wafv2.WebAcl(
        name,
        scope="CLOUDFRONT",
        default_action={"allow": {}},
        rules=rules,
        custom_response_bodies=[
            {
                "key": BUSY_BODY,
                "content": json.dumps({"error": "busy", "retry_after_s": JOIN_RETRY_AFTER_S}),
                "content_type": "APPLICATION_JSON",
            },
            {"key": LIMITED_BODY, "content": LIMITED_PAGE, "content_type": "TEXT_HTML"},
        ],
        visibility_config=_visibility(name),
        tags=tags,
        opts=opts,
    )
    # FSBP WAF.11. WAF writes only to groups named aws-waf-logs-*, in the ACL's region
    # (us-east-1 for CloudFront); visitors' cookies and credentials never reach the logs.
    log_group = aws.cloudwatch.LogGroup(
        f"{name}-waf",
        name=f"aws-waf-logs-{name}",
        retention_in_days=edge.log_group_retention_days,
        tags=tags,
        opts=opts,
    )
    aws.wafv2.WebAclLoggingConfiguration(
        name,
        resource_arn=acl.arn,
        log_destination_configs=[log_group.arn],
        redacted_fields=[
            {"single_header": {"name": header}} for header in ("authorization", "cookie")
        ],
        opts=opts,
    )
    return acl


def _rate_rules(
    name: str, waf: WafSettings, edge: EdgeSettings
) -> list[aws.wafv2.WebAclRuleArgsDict]:
    """Requests per client IP per window (priority 0 and after the room's rules): page and
    write requests against `rate_limit`; static assets, the room's polls and pages and the
    high-demand page against the far larger `asset_rate_limit`, so a household, campus or
    carrier NAT loading a page's assets or waiting in line is not blocked, and a client that
    busts the asset cache or floods the status route still is. Both answer 429 with
    Retry-After and a short bilingual page. WAF counts an IPv6 address as itself: it has no
    prefix aggregation (the join handler counts /64s)."""
    exempt = "|".join(re.escape(p.rstrip("*")) for p in (*edge.static_path_patterns, *UNCOUNTED))
    # Engine (camelCase) names this deep, as in _large_body_rule; a NOT holds one statement.
    on_assets: Any = {
        "regexMatchStatement": {
            "fieldToMatch": {"uriPath": {}},
            "regexString": f"^({exempt})",
            "textTransformations": [{"priority": 0, "type": "NONE"}],
        }
    }
    rules: list[aws.wafv2.WebAclRuleArgsDict] = []
    scope: Any
    for rule, priority, limit, scope in (
        ("per-ip-rate-limit", 0, waf.rate_limit, {"notStatement": {"statement": on_assets}}),
        ("per-ip-asset-rate-limit", len(MANAGED_RULE_GROUPS) + 4, waf.asset_rate_limit, on_assets),
    ):
        rules.append(
            {
                "name": rule,
                "priority": priority,
                "action": _too_many(LIMITED_BODY, LIMITED_RETRY_S),
                "statement": cast(
                    aws.wafv2.WebAclRuleStatementArgsDict,
                    {
                        "rate_based_statement": {
                            "limit": limit,
                            "aggregate_key_type": "IP",
                            "evaluation_window_sec": waf.evaluation_window_s,
                            "scope_down_statement": scope,
                        }
                    },
                ),
                "visibility_config": _visibility(f"{name}-{rule.removeprefix('per-ip-')}"),
            }
        )
    return rules


def _managed_rules(name: str) -> list[aws.wafv2.WebAclRuleArgsDict]:
    """AWS's managed groups (priorities 1..). The common rule set blocks bodies over 8 KB,
    which refuses ordinary form posts: that rule is counted (see _large_body_rule)."""
    rules: list[aws.wafv2.WebAclRuleArgsDict] = []
    for priority, group in enumerate(MANAGED_RULE_GROUPS, start=1):
        overrides: list[
            aws.wafv2.WebAclRuleStatementManagedRuleGroupStatementRuleActionOverrideArgsDict
        ] = (
            [{"name": "SizeRestrictions_BODY", "action_to_use": {"count": {}}}]
            if group == "AWSManagedRulesCommonRuleSet"
            else []
        )
        rules.append(
            {
                "name": group,
                "priority": priority,
                "override_action": {"none": {}},
                "statement": {
                    "managed_rule_group_statement": {
                        "vendor_name": "AWS",
                        "name": group,
                        "rule_action_overrides": overrides,
                    }
                },
                "visibility_config": _visibility(f"{name}-{group}"),
            }
        )
    return rules


def _large_body_rule(
    name: str, edge: EdgeSettings, uploads: bool
) -> list[aws.wafv2.WebAclRuleArgsDict]:
    """Blocks the common rule set's large-body label everywhere except the write paths and,
    with `uploads`, the inbox's upload path (none when there are no write paths). WAF reads at
    most the first 16 KB of a body from CloudFront, so how large a body may be on those paths
    is the inbox function's to say (from Content-Length, which CloudFront and S3 hold a body
    to): inline_body_max_bytes on a write path, body_max_bytes on an upload."""
    # One regex, not an or-statement: the provider nests statements at most three deep.
    allowed = [*edge.write_path_patterns, *([f"{UPLOADS_PATH}*"] if uploads else [])]
    write_paths = "|".join(re.escape(p.rstrip("*")) for p in allowed)
    if not edge.write_path_patterns:
        return []
    # Engine (camelCase) names: the SDK stops translating snake_case keys this deep (seen in
    # the offline plan), and the provider would drop them.
    on_write_path: Any = {
        "regexMatchStatement": {
            "fieldToMatch": {"uriPath": {}},
            "regexString": f"^({write_paths})",
            "textTransformations": [{"priority": 0, "type": "NONE"}],
        }
    }
    body_too_large = {"label_match_statement": {"scope": "LABEL", "key": BODY_SIZE_LABEL}}
    statement = {
        "and_statement": {
            "statements": [body_too_large, {"not_statement": {"statement": on_write_path}}]
        }
    }
    return [
        {
            "name": "large-body-outside-write-paths",
            "priority": len(MANAGED_RULE_GROUPS) + 1,
            "action": {"block": {}},
            "statement": cast(aws.wafv2.WebAclRuleStatementArgsDict, statement),
            "visibility_config": _visibility(f"{name}-large-body"),
        }
    ]


def _high_demand_responses(
    s: EdgeSettings,
) -> list[aws.cloudfront.DistributionCustomErrorResponseArgsDict]:
    """Whatever the origin fails (a failover status; CloudFront's own 502 for no connection and
    504 for a timeout) gets the bilingual high-demand page with a 503, for any path, never a raw
    5xx; a short TTL (`error_caching_ttl_s`) brings people back to the origin as soon as it
    recovers, and sheds its load meanwhile. The errors CloudFront may otherwise cache for 10 s
    (`NEVER_CACHED_ERRORS`) are never cached: one visitor's 400 or 403 is never another's
    answer."""
    pages: list[aws.cloudfront.DistributionCustomErrorResponseArgsDict] = [
        {
            "error_code": code,
            "response_code": 503,
            "response_page_path": HIGH_DEMAND_PAGE,
            "error_caching_min_ttl": s.error_caching_ttl_s,
        }
        for code in s.failover_status_codes
    ]
    return pages + [
        {"error_code": code, "error_caching_min_ttl": 0} for code in aws_facts.NEVER_CACHED_ERRORS
    ]


def _viewer_certificate(
    certificate_arn: str | None,
) -> aws.cloudfront.DistributionViewerCertificateArgsDict:
    """SNI with TLS 1.2 at least for the stack's certificate; without one, the default
    *.cloudfront.net certificate, which ignores minimum_protocol_version."""
    if not certificate_arn:
        return {"cloudfront_default_certificate": True}
    return {
        "acm_certificate_arn": certificate_arn,
        "ssl_support_method": "sni-only",
        "minimum_protocol_version": "TLSv1.2_2021",
    }
