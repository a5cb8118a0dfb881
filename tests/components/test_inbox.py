"""The inbox as prod declares it (offline, under Pulumi's mocks)."""

from __future__ import annotations

import json
import re

import pytest

from components.edge import (
    INBOX_FUNCTION,
    INBOX_ORIGIN,
    UPLOAD_HEADERS,
    UPLOADS_ORIGIN,
    UPLOADS_PATH,
    inbox_code,
)
from components.inbox import MESSAGE_ATTRIBUTES, RECEIPT_SECRET_KEY, api_route
from planning.settings.inbox import CONSUMER_BATCH
from scripts.offline_cloud import OfflineRun, Registration, is_secret
from tests.helpers import stack_run


@pytest.fixture(scope="module")
def run() -> OfflineRun:
    return stack_run("prod")


def queue(run: OfflineRun, name: str = "floodgate-prod-inbox") -> Registration:
    (found,) = [r for r in run.of_type("aws:sqs/queue:Queue") if r.name == name]
    return found


def test_a_cloudfront_path_pattern_becomes_an_http_api_route() -> None:
    assert api_route("/submit/*") == "POST /submit/{proxy+}"
    assert api_route("/apply") == "POST /apply"
    with pytest.raises(ValueError, match="only allowed as the last path segment"):
        api_route("/a*/b")


def test_the_accept_route_is_sqs_send_message_with_no_lambda(run, prod) -> None:
    send = run.one("aws:apigatewayv2/integration:Integration", "-inbox-send").inputs
    queue_out = queue(run).outputs
    assert (send["integrationType"], send["integrationSubtype"]) == ("AWS_PROXY", "SQS-SendMessage")
    assert send["requestParameters"]["QueueUrl"] == queue_out["url"]
    assert send["requestParameters"]["MessageBody"] == "$request.body"
    assert json.loads(send["requestParameters"]["MessageAttributes"]) == MESSAGE_ATTRIBUTES
    routes = {
        r.inputs["routeKey"]
        for r in run.of_type("aws:apigatewayv2/route:Route")
        if r.name.startswith("floodgate-prod-inbox")
    }
    assert routes == {"POST /submit/{proxy+}", "GET /inbox/receipts/{receipt}"}


def test_api_gateway_may_send_to_the_inbox_queue_only(run) -> None:
    policy = json.loads(run.one("aws:iam/rolePolicy:RolePolicy", "-inbox-send").inputs["policy"])
    sends = [s for s in policy["Statement"] if "sqs:SendMessage" in s["Action"]]
    assert [s["Resource"] for s in sends] == [queue(run).outputs["arn"]]


def test_the_queue_and_its_dead_letters_as_the_settings_say(run, prod) -> None:
    i = prod.inbox
    main = queue(run).inputs
    dlq = queue(run, "floodgate-prod-inbox-dlq")
    redrive = json.loads(main["redrivePolicy"])
    assert redrive == {"deadLetterTargetArn": dlq.outputs["arn"], "maxReceiveCount": 5}
    assert main["messageRetentionSeconds"] < dlq.inputs["messageRetentionSeconds"]
    assert main["visibilityTimeoutSeconds"] == 6 * i.consumer_timeout_s
    assert main["kmsMasterKeyId"] == dlq.inputs["kmsMasterKeyId"]
    assert main["kmsMasterKeyId"].startswith("arn:aws:kms:")
    assert dlq.protect


def test_the_consumer_drains_at_the_back_office_s_pace(run, prod) -> None:
    mapping = run.one("aws:lambda/eventSourceMapping:EventSourceMapping").inputs
    assert mapping["scalingConfig"] == {"maximumConcurrency": prod.inbox.consumer_concurrency}
    assert mapping["batchSize"] == CONSUMER_BATCH
    assert mapping["functionResponseTypes"] == ["ReportBatchItemFailures"]
    consumer = run.one("aws:lambda/function:Function", "-inbox-consumer").inputs
    assert consumer["timeout"] == prod.inbox.consumer_timeout_s
    assert consumer["environment"]["variables"]["FG_BACK_OFFICE_URL"] == prod.inbox.back_office_url


def test_the_edge_and_the_consumer_hold_the_same_receipt_secret(run) -> None:
    version = run.one("aws:secretsmanager/secretVersion:SecretVersion", "-inbox-receipt")
    edge = run.one("aws:cloudfront/keyvaluestoreKey:KeyvaluestoreKey", "-inbox-receipt")
    assert version.revealed()["secretString"] == edge.revealed()["value"]
    assert edge.inputs["key"] == RECEIPT_SECRET_KEY
    assert f"kvs.get('{RECEIPT_SECRET_KEY}')" in INBOX_FUNCTION.read_text(encoding="utf-8")
    assert is_secret(edge.to_json()["inputs"]["value"])


def test_inbox_paths_go_to_the_inbox_and_other_writes_to_the_fleet(run, prod) -> None:
    distribution = run.one("aws:cloudfront/distribution:Distribution").revealed()
    by_path = {b["pathPattern"]: b for b in distribution["orderedCacheBehaviors"]}
    accept = by_path["/submit/*"]
    assert accept["targetOriginId"] == INBOX_ORIGIN
    events = {a["eventType"] for a in accept["functionAssociations"]}
    assert events == {"viewer-request", "viewer-response"}
    assert by_path["/api/*"]["targetOriginId"] == "alb"
    assert by_path["/inbox/receipts/*"]["targetOriginId"] == INBOX_ORIGIN
    origin = next(o for o in distribution["origins"] if o["originId"] == INBOX_ORIGIN)
    assert origin["domainName"] == prod.inbox.api_domain_name


def test_the_inbox_function_deploys_with_its_limits_and_paths(run, prod) -> None:
    i = prod.inbox
    accept = run.one("aws:cloudfront/function:Function", "-inbox-accept").inputs
    assert accept["code"] == inbox_code(i.inline_body_max_bytes, i.body_max_bytes, i.path_patterns)
    assert f"const INLINE_MAX = {i.inline_body_max_bytes};" in accept["code"]
    assert f"const UPLOAD_MAX = {i.body_max_bytes};" in accept["code"]
    assert f"const PATTERNS = {json.dumps(i.path_patterns)};" in accept["code"]
    assert "__" not in accept["code"].replace("__proto__", "")
    assert len(accept["code"].encode()) <= 10_240, "CloudFront Functions take 10 KB of code"


def test_the_inbox_s_api_is_reached_only_by_its_custom_domain(run) -> None:
    api = run.one("aws:apigatewayv2/api:Api", "-inbox").inputs
    assert api["disableExecuteApiEndpoint"] is True
    stage = run.one("aws:apigatewayv2/stage:Stage", "-inbox").inputs
    assert stage["defaultRouteSettings"]["throttlingRateLimit"] == 2_000
    assert "destinationArn" in stage["accessLogSettings"]


def test_an_upload_goes_through_an_origin_access_control_to_the_uploads_bucket(run) -> None:
    distribution = run.one("aws:cloudfront/distribution:Distribution").revealed()
    behaviours = [b["pathPattern"] for b in distribution["orderedCacheBehaviors"]]
    # First match wins: the upload path before the pages' /inbox/*.
    assert behaviours.index(UPLOADS_PATH + "*") < behaviours.index("/inbox/*")
    upload = distribution["orderedCacheBehaviors"][behaviours.index(UPLOADS_PATH + "*")]
    assert "PUT" in upload["allowedMethods"] and upload["targetOriginId"] == UPLOADS_ORIGIN
    assert {a["eventType"] for a in upload["functionAssociations"]} == {
        "viewer-request",
        "viewer-response",
    }
    origin = next(o for o in distribution["origins"] if o["originId"] == UPLOADS_ORIGIN)
    bucket = run.one("aws:s3/bucket:Bucket", "-inbox-uploads")
    assert origin["domainName"] == bucket.outputs["bucketRegionalDomainName"]
    oac = next(
        o for o in run.of_type("aws:cloudfront/originAccessControl:OriginAccessControl")
        if o.id == origin["originAccessControlId"]
    )  # fmt: skip
    assert oac.inputs["signingBehavior"] == "always"
    forwarded = next(
        p for p in run.of_type("aws:cloudfront/originRequestPolicy:OriginRequestPolicy")
        if p.id == upload["originRequestPolicyId"]
    )  # fmt: skip
    assert forwarded.inputs["headersConfig"]["headers"]["items"] == list(UPLOAD_HEADERS)


def test_only_the_distribution_writes_uploads_and_they_are_encrypted_with_the_inbox_key(
    run, prod
) -> None:
    distribution_arn = run.one("aws:cloudfront/distribution:Distribution").outputs["arn"]
    bucket = run.one("aws:s3/bucket:Bucket", "-inbox-uploads")
    assert bucket.protect
    policy = json.loads(
        run.one("aws:s3/bucketPolicy:BucketPolicy", "-inbox-uploads").inputs["policy"]
    )
    (write,) = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    assert write["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert write["Action"] == "s3:PutObject"
    assert write["Resource"] == bucket.outputs["arn"] + "/uploads/*"
    assert write["Condition"] == {"StringEquals": {"AWS:SourceArn": distribution_arn}}
    key_arn = run.one("aws:kms/key:Key", "-inbox").outputs["arn"]
    (rule,) = run.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "-inbox-uploads",
    ).inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms",
        "kmsMasterKeyId": key_arn,
    }
    (expiry,) = run.one(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "-inbox-uploads"
    ).inputs["rules"]
    assert expiry["expiration"]["days"] == prod.inbox.upload_expiry_days
    assert expiry["expiration"]["days"] * 86_400 > prod.inbox.dlq_retention_s
    statements = json.loads(run.one("aws:kms/keyPolicy:KeyPolicy", "-inbox").inputs["policy"])[
        "Statement"
    ]
    by_sid = {s["Sid"]: s for s in statements}
    assert by_sid["CloudFrontEncryptsUploads"]["Condition"] == {
        "StringEquals": {"AWS:SourceArn": distribution_arn}
    }
    assert by_sid["AccountIamPolicies"]["Action"] == "kms:*"  # the default policy stays


def test_the_uploads_bucket_s_events_go_to_the_inbox_queue_and_only_its(run) -> None:
    notification = run.one("aws:s3/bucketNotification:BucketNotification")
    (to_queue,) = notification.inputs["queues"]
    assert to_queue["queueArn"] == queue(run).outputs["arn"]
    assert (to_queue["events"], to_queue["filterPrefix"]) == (["s3:ObjectCreated:*"], "uploads/")
    sent = json.loads(run.one("aws:sqs/queuePolicy:QueuePolicy", "-inbox").inputs["policy"])
    (statement,) = sent["Statement"]
    bucket_arn = run.one("aws:s3/bucket:Bucket", "-inbox-uploads").outputs["arn"]
    assert statement["Condition"]["ArnEquals"] == {"aws:SourceArn": bucket_arn}
    consumer = run.one("aws:iam/rolePolicy:RolePolicy", "-inbox-consumer").inputs["policy"]
    grants = {tuple(s["Action"]): s["Resource"] for s in json.loads(consumer)["Statement"]}
    assert grants[("s3:GetObject", "s3:DeleteObject")] == bucket_arn + "/uploads/*"


def test_the_waf_lets_large_bodies_through_on_write_paths_and_the_upload_path_only(run) -> None:
    acl = run.one("aws:wafv2/webAcl:WebAcl").inputs
    (rule,) = [r for r in acl["rules"] if r["name"] == "large-body-outside-write-paths"]
    regex = rule["statement"]["andStatement"]["statements"][1]["notStatement"]["statement"][
        "regexMatchStatement"
    ]["regexString"]
    assert re.match(regex, "/inbox/uploads/submit/apply")
    assert re.match(regex, "/submit/apply")
    assert not re.match(regex, "/inbox/received.html")
    assert not re.match(regex, "/account/profile")


def test_without_uploads_there_is_no_bucket_and_the_key_keeps_its_default_policy() -> None:
    from scripts.offline_cloud import run_offline
    from tests.helpers import stack_config, with_setting

    config = with_setting(stack_config("prod"), "inbox.body_max_bytes", 262_144)
    run = run_offline("prod", config)
    assert not [b for b in run.of_type("aws:s3/bucket:Bucket") if "-inbox-uploads" in b.name]
    assert not run.of_type("aws:kms/keyPolicy:KeyPolicy")
    assert not run.of_type("aws:s3/bucketNotification:BucketNotification")
    distribution = run.one("aws:cloudfront/distribution:Distribution").revealed()
    assert UPLOADS_PATH + "*" not in [
        b["pathPattern"] for b in distribution["orderedCacheBehaviors"]
    ]
    consumer = run.one("aws:lambda/function:Function", "-inbox-consumer").inputs
    assert consumer["environment"]["variables"]["FG_INBOX_BUCKET"] == ""
    accept = run.one("aws:cloudfront/function:Function", "-inbox-accept").inputs
    assert "const UPLOAD_MAX = 0;" in accept["code"]
