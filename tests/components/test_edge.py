"""Edge: CloudFront with WAF, HTTPS to origin, the bilingual high-demand page for what fails."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pulumi
import pulumi_aws as aws
import pytest
from pulumi.runtime import rpc

from components.edge import (
    ALB_ORIGIN,
    CACHING_OPTIMIZED,
    EXACT_FILES,
    HIGH_DEMAND_PAGE,
    PAGES_DIR,
    PAGES_ORIGIN,
    Edge,
    EdgeArgs,
)
from functions.admission.room import ORIGIN_HEADER


def build(evaluate, settings):
    def program() -> None:
        us_east_1 = aws.Provider("use1", region="us-east-1")
        Edge(
            "edge",
            EdgeArgs(
                settings=settings.edge,
                waf=settings.waf,
                origin_domain_name=settings.load_balancer.origin_domain_name,
                origin_secret=pulumi.Output.secret("edge-secret"),
                us_east_1=us_east_1,
                tags={},
            ),
        )

    return evaluate(program)


@pytest.fixture
def run(evaluate, prod):
    return build(evaluate, prod)


@pytest.fixture
def distribution(run):
    return run.one("aws:cloudfront/distribution:Distribution")


def test_viewers_get_tls_1_2_http2_and_3(distribution) -> None:
    inputs = distribution.inputs
    assert inputs["viewerCertificate"]["minimumProtocolVersion"] == "TLSv1.2_2021"
    assert inputs["viewerCertificate"]["sslSupportMethod"] == "sni-only"
    assert inputs["httpVersion"] == "http2and3"
    assert inputs["aliases"] == ["portal.example.ca"]
    assert inputs["defaultCacheBehavior"]["viewerProtocolPolicy"] == "redirect-to-https"
    assert inputs["defaultCacheBehavior"]["compress"] is True


def test_origin_is_https_only_and_carries_the_secret_header(distribution) -> None:
    assert rpc.is_rpc_secret(distribution.inputs["origins"])
    alb = next(o for o in distribution.revealed()["origins"] if o["originId"] == ALB_ORIGIN)
    assert alb["customOriginConfig"]["originProtocolPolicy"] == "https-only"
    assert alb["customOriginConfig"]["originSslProtocols"] == ["TLSv1.2"]
    assert alb["customHeaders"] == [{"name": ORIGIN_HEADER, "value": "edge-secret"}]
    assert (alb["connectionAttempts"], alb["connectionTimeout"]) == (1, 3)


def test_every_path_reaches_the_alb_directly_with_no_origin_group(distribution) -> None:
    """No origin group: its secondary would get the viewer's own path, which only a
    Lambda@Edge on every request could rewrite to the page."""
    assert "originGroups" not in distribution.inputs
    behaviours = [
        distribution.inputs["defaultCacheBehavior"],
        *distribution.inputs["orderedCacheBehaviors"],
    ]
    to_alb = {
        b.get("pathPattern", "*")
        for b in behaviours
        if b["targetOriginId"] in (ALB_ORIGIN, "alb-shielded")
    }
    assert to_alb == {
        "*",
        *("/assets/*", "/static/*", "/en/information/*", "/fr/information/*"),
        *("/favicon.ico", "/robots.txt"),
        *("/api/*", "/submit/*"),
    }
    pages = next(o for o in distribution.revealed()["origins"] if o["originId"] == PAGES_ORIGIN)
    assert pages["originAccessControlId"]


def test_a_failing_origin_answers_the_high_demand_page_for_any_path(distribution) -> None:
    """Custom error responses are distribution-wide and cover CloudFront's own 502 (no
    connection) and 504 (timeout); the page comes through /high-demand/* from the bucket."""
    responses = distribution.inputs["customErrorResponses"]
    pages = [r for r in responses if "responsePagePath" in r]
    assert {r["errorCode"] for r in pages} == {500, 502, 503, 504}
    assert all(r["responsePagePath"] == HIGH_DEMAND_PAGE for r in pages)
    assert all((r["responseCode"], r["errorCachingMinTtl"]) == (503, 10) for r in pages)
    page_behaviour = next(
        b
        for b in distribution.inputs["orderedCacheBehaviors"]
        if b["pathPattern"] == "/high-demand/*"
    )
    assert page_behaviour["targetOriginId"] == PAGES_ORIGIN


def test_refusals_are_never_cached_for_another_visitor(distribution) -> None:
    """CloudFront caches 400, 403 and 405 for 10 s whatever the origin's no-store."""
    responses = distribution.inputs["customErrorResponses"]
    never = [r for r in responses if "responsePagePath" not in r]
    # AWS's figures, not the code's: 405 is cached always, 400 and 403 with the origin's
    # max-age ("How CloudFront processes HTTP 4xx and 5xx status codes from your origin",
    # https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/HTTPStatusCodes.html),
    # for 10 s by default ("Control how long CloudFront caches errors",
    # https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/custom-error-pages-expiration.html).
    assert sorted(r["errorCode"] for r in never) == [400, 403, 405]
    assert all(r["errorCachingMinTtl"] == 0 and "responseCode" not in r for r in never)
    # The codes a custom error response may name ("Create a custom error page for specific HTTP
    # status codes", https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/creating-custom-error-pages.html).
    codes = [r["errorCode"] for r in responses]
    assert len(codes) == len(set(codes))
    assert set(codes) <= {400, 403, 404, 405, 414, 416, 500, 501, 502, 503, 504}


def test_static_assets_are_cached_long_and_dynamic_pages_not_at_all(run, distribution) -> None:
    static = next(
        p for p in run.of_type("aws:cloudfront/cachePolicy:CachePolicy") if "static" in p.name
    )
    assert static.inputs["defaultTtl"] == 86_400
    by_pattern = {b["pathPattern"]: b for b in distribution.inputs["orderedCacheBehaviors"]}
    assert by_pattern["/assets/*"]["cachePolicyId"] == static.id
    caching_disabled = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
    assert distribution.inputs["defaultCacheBehavior"]["cachePolicyId"] == caching_disabled


def test_waf_is_attached_and_lives_in_us_east_1(run, distribution) -> None:
    acl = run.one("aws:wafv2/webAcl:WebAcl")
    provider = run.one("pulumi:providers:aws")
    assert provider.inputs["region"] == "us-east-1"
    assert acl.provider.startswith(provider.urn)
    assert acl.inputs["scope"] == "CLOUDFRONT"
    assert distribution.inputs["webAclId"].endswith(acl.name)


def test_waf_rate_limits_per_ip_and_uses_managed_rules(run, prod) -> None:
    rules = {r["name"]: r for r in run.one("aws:wafv2/webAcl:WebAcl").inputs["rules"]}
    rate = rules["per-ip-rate-limit"]["statement"]["rateBasedStatement"]
    assert (rate["limit"], rate["aggregateKeyType"]) == (prod.waf.rate_limit, "IP")
    assert rate["evaluationWindowSec"] == 300
    assert {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"} <= set(rules)


def test_the_per_ip_limit_counts_pages_and_writes_and_answers_a_bilingual_429(run, prod) -> None:
    """2,000 requests per address per 5 minutes counted every asset and poll: a few people
    behind one carrier-grade NAT or office proxy were blocked for minutes, with no Retry-After."""
    acl = run.one("aws:wafv2/webAcl:WebAcl").inputs
    rule = next(r for r in acl["rules"] if r["name"] == "per-ip-rate-limit")
    rate = rule["statement"]["rateBasedStatement"]
    # pulumi-aws: a NOT statement holds one `statement` (an AND or OR holds `statements`).
    exempt = rate["scopeDownStatement"]["notStatement"]["statement"]
    uncounted = re.compile(exempt["regexMatchStatement"]["regexString"])
    for path in ("/assets/app.js", "/static/x.css", "/queue/status", "/queue/room",
                 "/waiting-room/index.html", "/high-demand/index.html"):  # fmt: skip
        assert uncounted.match(path), path
    for path in ("/", "/en/apply", "/api/forms", "/submit/x", "/queue/join", "/assetsx"):
        assert not uncounted.match(path), path
    assets = next(r for r in acl["rules"] if r["name"] == "per-ip-asset-rate-limit")
    asset_rate = assets["statement"]["rateBasedStatement"]
    assert asset_rate["scopeDownStatement"] == exempt, "what one rule leaves out, the other counts"
    assert (rate["limit"], asset_rate["limit"]) == (prod.waf.rate_limit, prod.waf.asset_rate_limit)
    assert assets["action"] == rule["action"]
    response = rule["action"]["block"]["customResponse"]
    assert response["responseCode"] == 429
    assert response["responseHeaders"] == [{"name": "retry-after", "value": "60"}]
    page = {b["key"]: b for b in acl["customResponseBodies"]}[response["customResponseBodyKey"]]
    assert page["contentType"] == "TEXT_HTML" and 'lang="fr"' in page["content"]
    assert len(page["content"].encode()) <= 4_096, "WAF: 4 KB per custom response body"


def test_the_exact_files_the_gate_passes_are_kept_at_the_edge(run, distribution) -> None:
    """A made-up query on /favicon.ico reached the fleet while the room queued (the gate passes
    it): the managed CachingOptimized policy keys on no query string and keeps the file."""
    by_pattern = {b["pathPattern"]: b for b in distribution.inputs["orderedCacheBehaviors"]}
    for pattern in EXACT_FILES:
        assert by_pattern[pattern]["cachePolicyId"] == CACHING_OPTIMIZED
        assert by_pattern[pattern]["functionAssociations"] == [], "no room in this build"
    gate = (PAGES_DIR.parent / "edge/gate.js").read_text(encoding="utf-8")
    assert f"const BYPASS_FILES = {json.dumps(list(EXACT_FILES))};".replace('"', "'") in gate


def test_a_shield_without_public_pages_still_has_its_origin(evaluate, prod) -> None:
    """The exact files use the shielded origin whenever a shield is set: CloudFront refuses a
    behaviour whose target origin the distribution does not declare."""
    bare = prod.model_copy(
        update={"edge": prod.edge.model_copy(update={"public_page_patterns": []})}
    )
    distribution = build(evaluate, bare).one("aws:cloudfront/distribution:Distribution").revealed()
    origins = {o["originId"] for o in distribution["origins"]}
    targets = {b["targetOriginId"] for b in distribution["orderedCacheBehaviors"]}
    assert targets <= origins and "alb-shielded" in targets


def test_joins_are_rate_limited_per_ip_with_a_json_429(run, prod) -> None:
    """500 joins from one client once filled the head of the line: WAF holds one address to
    `join_rate_limit` joins a window and answers as the queue API does when busy."""
    acl = run.one("aws:wafv2/webAcl:WebAcl").inputs
    rules = {r["name"]: r for r in acl["rules"]}
    join = rules["queue-join-rate"]
    rate = join["statement"]["rateBasedStatement"]
    assert (rate["limit"], rate["aggregateKeyType"]) == (prod.waf.join_rate_limit, "IP")
    match = rate["scopeDownStatement"]["byteMatchStatement"]
    assert (match["searchString"], match["positionalConstraint"]) == ("/queue/join", "EXACTLY")
    assert "uriPath" in match["fieldToMatch"]
    response = join["action"]["block"]["customResponse"]
    assert response["responseCode"] == 429
    assert response["responseHeaders"] == [{"name": "retry-after", "value": "60"}]
    bodies = {b["key"]: b for b in acl["customResponseBodies"]}
    body = bodies[response["customResponseBodyKey"]]
    assert json.loads(body["content"]) == {"error": "busy", "retry_after_s": 60}
    priorities = [r["priority"] for r in acl["rules"]]
    assert len(priorities) == len(set(priorities)), "WAF refuses two rules of one priority"
    assert "waiting-page-challenge" not in rules


def test_join_limit_can_challenge_and_then_the_waiting_page_is_challenged_too(
    evaluate, prod_config
) -> None:
    from tests.helpers import settings_with

    settings = settings_with(prod_config, waf__join_limit_action="challenge")
    rules = {
        r["name"]: r
        for r in build(evaluate, settings).one("aws:wafv2/webAcl:WebAcl").inputs["rules"]
    }
    assert rules["queue-join-rate"]["action"] == {"challenge": {}}
    page = rules["waiting-page-challenge"]
    assert page["action"] == {"challenge": {}}
    assert page["statement"]["byteMatchStatement"]["searchString"] == "/waiting-room/"


def test_pages_bucket_is_readable_only_by_this_distribution(run, distribution) -> None:
    policies = [
        json.loads(p.inputs["policy"]) for p in run.of_type("aws:s3/bucketPolicy:BucketPolicy")
    ]
    reads = [s for p in policies for s in p["Statement"] if s["Sid"] == "CloudFrontReadsPages"]
    (read,) = reads
    assert read["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert read["Condition"]["StringEquals"]["AWS:SourceArn"].endswith(distribution.id)


def test_access_logs_are_written(run, distribution) -> None:
    logging = distribution.inputs["loggingConfig"]
    assert logging["bucket"].endswith(".s3.amazonaws.com")


def test_static_pages_are_uploaded(run) -> None:
    pages = {p.inputs["key"]: p for p in run.of_type("aws:s3/bucketObjectv2:BucketObjectv2")}
    assert sorted(pages) == [
        HIGH_DEMAND_PAGE[1:],
        "inbox/received.html",
        "waiting-room/closed.html",
        "waiting-room/index.html",
        "waiting-room/return.js",
    ]
    assert {k: p.inputs["contentType"] for k, p in pages.items() if k.endswith(".js")} == {
        "waiting-room/return.js": "text/javascript"
    }
    assert {p.inputs["contentType"] for k, p in pages.items() if k.endswith(".html")} == {
        "text/html"
    }


class _Langs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.langs: set[str] = set()

    def handle_starttag(self, tag, attrs) -> None:
        self.langs |= {v for k, v in attrs if k == "lang" and v}


def test_high_demand_page_is_bilingual_and_self_contained() -> None:
    html = (PAGES_DIR / HIGH_DEMAND_PAGE.lstrip("/")).read_text(encoding="utf-8")
    parser = _Langs()
    parser.feed(html)
    assert {"en", "fr"} <= parser.langs
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")


def test_public_pages_are_cached_as_the_origin_says_with_nothing_per_visitor(
    run, distribution, prod
) -> None:
    """Default TTL 0: a page without max-age, or with private/no-store, is never kept; no cookie
    or viewer header in the key; the named query strings only; gated like every ALB path."""
    by_pattern = {b["pathPattern"]: b for b in distribution.inputs["orderedCacheBehaviors"]}
    policies = {p.id: p.inputs for p in run.of_type("aws:cloudfront/cachePolicy:CachePolicy")}
    assert prod.edge.public_page_patterns == ["/en/information/*", "/fr/information/*"]
    for pattern in prod.edge.public_page_patterns:
        behaviour = by_pattern[pattern]
        assert behaviour["allowedMethods"] == ["GET", "HEAD", "OPTIONS"]
        assert "originRequestPolicyId" not in behaviour, "only the cache key reaches the origin"
        policy = policies[behaviour["cachePolicyId"]]
        assert (policy["minTtl"], policy["defaultTtl"], policy["maxTtl"]) == (0, 0, 300)
        key = policy["parametersInCacheKeyAndForwardedToOrigin"]
        assert key["cookiesConfig"] == {"cookieBehavior": "none"}
        assert key["headersConfig"] == {"headerBehavior": "none"}
        assert key["queryStringsConfig"] == {
            "queryStringBehavior": "whitelist",
            "queryStrings": {"items": ["lang"]},
        }


def test_origin_shield_fronts_the_public_pages_only(distribution, prod) -> None:
    origins = {o["originId"]: o for o in distribution.revealed()["origins"]}
    shielded = origins["alb-shielded"]
    assert shielded["originShield"] == {"enabled": True, "originShieldRegion": "us-east-1"}
    assert shielded["domainName"] == origins[ALB_ORIGIN]["domainName"]
    assert shielded["customHeaders"] == origins[ALB_ORIGIN]["customHeaders"]
    assert "originShield" not in origins[ALB_ORIGIN], "uncached requests skip the extra hop"
    targets = {
        b["pathPattern"]: b["targetOriginId"] for b in distribution.inputs["orderedCacheBehaviors"]
    }
    shielded_paths = [p for p, o in targets.items() if o == "alb-shielded"]
    public = ["/en/information/*", "/fr/information/*"]
    assert shielded_paths == [*public, "/favicon.ico", "/robots.txt"]


def test_no_behaviour_carries_lambda_at_edge(run, distribution) -> None:
    """Nothing per-request and regional on the healthy path: Lambda@Edge would run in the
    viewer's Region against its 1,000 concurrency, and a throttle answers 503."""
    behaviours = [
        distribution.inputs["defaultCacheBehavior"],
        *distribution.inputs["orderedCacheBehaviors"],
    ]
    assert all(not b.get("lambdaFunctionAssociations") for b in behaviours)
    assert run.of_type("aws:lambda/function:Function") == []


def test_large_form_posts_pass_the_common_rule_set_on_write_paths_only(run, prod) -> None:
    rules = {r["name"]: r for r in run.one("aws:wafv2/webAcl:WebAcl").inputs["rules"]}
    common = rules["AWSManagedRulesCommonRuleSet"]["statement"]["managedRuleGroupStatement"]
    assert common["ruleActionOverrides"] == [
        {"name": "SizeRestrictions_BODY", "actionToUse": {"count": {}}}
    ]
    scoped = rules["large-body-outside-write-paths"]
    assert "block" in scoped["action"]
    label, outside = scoped["statement"]["andStatement"]["statements"]
    assert label["labelMatchStatement"]["key"].endswith("SizeRestrictions_Body")
    write_path = outside["notStatement"]["statement"]
    pattern = re.compile(write_path["regexMatchStatement"]["regexString"])
    assert all(pattern.match(p.rstrip("*") + "form") for p in prod.edge.write_path_patterns)
    assert not pattern.match("/apply") and not pattern.match("/x/api/")


def test_waf_logs_redact_cookies_and_credentials(run) -> None:
    config = run.one("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration").inputs
    redacted = {f["singleHeader"]["name"] for f in config["redactedFields"]}
    assert redacted == {"cookie", "authorization"}
    group = next(g for g in run.of_type("aws:cloudwatch/logGroup:LogGroup") if "waf" in g.name)
    assert group.inputs["name"].startswith("aws-waf-logs-"), "WAF writes only to aws-waf-logs-*"


def test_the_high_demand_page_is_never_kept_by_a_browser(run) -> None:
    """Catches the failover page uploaded cacheable: it answers deep paths like /apply while
    the origin fails, and a browser keeping it would show it after the portal is back."""
    pages = {p.inputs["key"]: p.inputs for p in run.of_type("aws:s3/bucketObjectv2:BucketObjectv2")}
    assert pages[HIGH_DEMAND_PAGE[1:]]["cacheControl"] == "no-store"
    room_pages = [k for k in pages if k.startswith("waiting-room/")]
    assert room_pages and all(pages[k]["cacheControl"] == "max-age=60" for k in room_pages)


def test_standard_logs_never_record_visitors_cookies(distribution) -> None:
    """Catches include_cookies turned on: the visitor's waiting-room token would land in S3."""
    assert distribution.inputs["loggingConfig"]["includeCookies"] is False


def test_versioned_asset_urls_reach_the_cache_key(run) -> None:
    """Catches the static policy dropping query strings: after a deploy `app.js?v=new` would
    be answered with the old file for a day."""
    static = next(
        p for p in run.of_type("aws:cloudfront/cachePolicy:CachePolicy") if "static" in p.name
    ).inputs
    key = static["parametersInCacheKeyAndForwardedToOrigin"]
    assert key["queryStringsConfig"] == {"queryStringBehavior": "all"}
    assert key["cookiesConfig"] == {"cookieBehavior": "none"}


def test_only_the_write_paths_take_form_posts(distribution) -> None:
    """Catches a write path left read-only (CloudFront answers a POST there 403), or another
    path opened to writes."""
    every = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"]
    methods = {
        b["pathPattern"]: b["allowedMethods"] for b in distribution.inputs["orderedCacheBehaviors"]
    }
    assert {p for p, m in methods.items() if m == every} == {"/api/*", "/submit/*"}
    assert all(m in (every, ["GET", "HEAD", "OPTIONS"]) for m in methods.values())
    assert distribution.inputs["defaultCacheBehavior"]["allowedMethods"] == [
        "GET",
        "HEAD",
        "OPTIONS",
    ]
