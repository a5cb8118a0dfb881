"""The inbox as prod declares it (offline, under Pulumi's mocks)."""

from __future__ import annotations

import json

import pytest

from components.edge import INBOX_FUNCTION, INBOX_ORIGIN, inbox_code
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


def test_the_inbox_function_deploys_with_the_inline_limit(run, prod) -> None:
    accept = run.one("aws:cloudfront/function:Function", "-inbox-accept").inputs
    assert accept["code"] == inbox_code(prod.inbox.inline_body_max_bytes)
    assert f"const INLINE_MAX = {prod.inbox.inline_body_max_bytes};" in accept["code"]
    assert "__INLINE_MAX__" not in accept["code"]
    assert len(accept["code"].encode()) <= 10_240, "CloudFront Functions take 10 KB of code"


def test_the_inbox_s_api_is_reached_only_by_its_custom_domain(run) -> None:
    api = run.one("aws:apigatewayv2/api:Api", "-inbox").inputs
    assert api["disableExecuteApiEndpoint"] is True
    stage = run.one("aws:apigatewayv2/stage:Stage", "-inbox").inputs
    assert stage["defaultRouteSettings"]["throttlingRateLimit"] == 2_000
    assert "destinationArn" in stage["accessLogSettings"]
