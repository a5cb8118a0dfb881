"""Edge: CloudFront with WAF, HTTPS to origin, failover to the bilingual high-demand page."""

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
    HIGH_DEMAND_PAGE,
    PAGES_DIR,
    PAGES_ORIGIN,
    PORTAL_GROUP,
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


def test_origin_group_fails_over_to_the_pages_bucket(distribution, prod) -> None:
    (group,) = distribution.inputs["originGroups"]
    assert group["originId"] == PORTAL_GROUP
    assert group["failoverCriteria"]["statusCodes"] == [500, 502, 503, 504]
    assert [m["originId"] for m in group["members"]] == [ALB_ORIGIN, PAGES_ORIGIN]
    assert distribution.inputs["defaultCacheBehavior"]["targetOriginId"] == PORTAL_GROUP
    pages = next(o for o in distribution.revealed()["origins"] if o["originId"] == PAGES_ORIGIN)
    assert pages["originAccessControlId"]


def test_writes_bypass_the_origin_group_but_keep_error_pages(distribution) -> None:
    writes = [
        b for b in distribution.inputs["orderedCacheBehaviors"] if "POST" in b["allowedMethods"]
    ]
    assert {b["pathPattern"] for b in writes} == {"/api/*", "/submit/*"}
    assert all(b["targetOriginId"] == ALB_ORIGIN for b in writes)
    group_targets = [
        b
        for b in distribution.inputs["orderedCacheBehaviors"]
        if b["targetOriginId"] == PORTAL_GROUP
    ]
    assert all("POST" not in b["allowedMethods"] for b in group_targets)


def test_errors_show_the_high_demand_page_briefly_cached(distribution) -> None:
    responses = distribution.inputs["customErrorResponses"]
    assert {r["errorCode"] for r in responses} == {500, 502, 503, 504}
    assert all(r["responsePagePath"] == HIGH_DEMAND_PAGE for r in responses)
    assert all(r["errorCachingMinTtl"] == 10 for r in responses)


def test_static_assets_are_cached_long_and_dynamic_pages_not_at_all(run, distribution) -> None:
    static = run.one("aws:cloudfront/cachePolicy:CachePolicy")
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
    (body,) = acl["customResponseBodies"]
    assert body["key"] == response["customResponseBodyKey"]
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


def test_every_failover_behaviour_sends_failed_over_requests_to_the_page(run, distribution) -> None:
    """CloudFront runs origin-request triggers again for the secondary origin; viewer-response
    functions never see a response >= 400, so none is used (edge-functions-restrictions)."""
    function = run.one("aws:lambda/function:Function")
    assert function.inputs["handler"] == "failover_origin.handler"
    behaviours = [
        distribution.inputs["defaultCacheBehavior"],
        *distribution.inputs["orderedCacheBehaviors"],
    ]
    for behaviour in behaviours:
        assert all(a["eventType"] != "viewer-response" for a in behaviour["functionAssociations"])
        triggers = behaviour.get("lambdaFunctionAssociations") or []
        if behaviour["targetOriginId"] == PORTAL_GROUP:
            (trigger,) = triggers
            assert trigger["eventType"] == "origin-request"
            assert trigger["lambdaArn"] == function.outputs["qualifiedArn"]
        else:
            assert triggers == []


def test_failover_trigger_meets_lambda_at_edge_rules(run) -> None:
    function = run.one("aws:lambda/function:Function")
    f = function.inputs
    assert function.outputs["arn"].startswith("arn:aws:lambda:us-east-1:")
    assert f["publish"] is True and f["architectures"] == ["x86_64"]
    assert "layers" not in f and "environment" not in f and f["timeout"] <= 30
    assert f["skipDestroy"] is True, "replicas outlive the association; destroy must not fail"
    role = run.one("aws:iam/role:Role").inputs
    (statement,) = json.loads(role["assumeRolePolicy"])["Statement"]
    assert set(statement["Principal"]["Service"]) == {
        "lambda.amazonaws.com",
        "edgelambda.amazonaws.com",
    }


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
    (write_path,) = outside["notStatement"]["statements"]
    pattern = re.compile(write_path["regexMatchStatement"]["regexString"])
    assert all(pattern.match(p.rstrip("*") + "form") for p in prod.edge.write_path_patterns)
    assert not pattern.match("/apply") and not pattern.match("/x/api/")


def test_waf_logs_redact_cookies_and_credentials(run) -> None:
    config = run.one("aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration").inputs
    redacted = {f["singleHeader"]["name"] for f in config["redactedFields"]}
    assert redacted == {"cookie", "authorization"}
    group = next(g for g in run.of_type("aws:cloudwatch/logGroup:LogGroup") if "waf" in g.name)
    assert group.inputs["name"].startswith("aws-waf-logs-"), "WAF writes only to aws-waf-logs-*"
