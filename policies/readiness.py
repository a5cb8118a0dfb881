"""Surge readiness: what must hold for the night itself, whatever AWS accepts."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from typing import Any

from pulumi_policy import ResourceValidationArgs

from planning import aws_facts
from planning.capacity import max_with_zone_lost, peak_check, room_item_reads
from policies.apply_time import (
    T_ALARM,
    T_BUCKET,
    T_DISTRIBUTION,
    T_FUNCTION,
    T_GROUP,
    T_LISTENER_RULE,
    T_TABLE,
    T_TOPIC,
    behaviours,
)
from policies.props import as_list, get, policy_document
from policies.rule import (
    DoesNotApplyError,
    Exemption,
    Finding,
    ResourceRule,
    StackRule,
    StackView,
    resource_settings,
)

T_KVS = "aws:cloudfront/keyValueStore:KeyValueStore"
T_API = "aws:apigatewayv2/api:Api"
T_SECRET = "aws:secretsmanager/secret:Secret"
T_CF_FUNCTION = "aws:cloudfront/function:Function"
T_SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
STATEFUL = (T_TABLE, T_KVS, T_BUCKET, T_SECRET)


def _alb_headers(view: StackView) -> set[str]:
    """Headers the ALB's listener rules require: only CloudFront's ALB origin carries them."""
    return {
        str(get(condition, "httpHeader.httpHeaderName", "")).lower()
        for rule in view.of_type(T_LISTENER_RULE)
        for condition in as_list(get(rule.props, "conditions"))
        if get(condition, "httpHeader") is not None
    }


def _alb_behaviours(
    props: dict, alb_headers: set[str], api_domain: str | None
) -> Iterator[tuple[str, dict]]:
    """Behaviours that reach the load balancer: its origin, or an origin group holding it. The
    queue API's origin carries the same header (its handlers check it too) but is its custom
    domain (`api_domain`) or API Gateway's `<id>.execute-api.<region>.amazonaws.com`."""
    origins = {
        o.get("originId")
        for o in as_list(props.get("origins"))
        if alb_headers & {str(h.get("name", "")).lower() for h in as_list(o.get("customHeaders"))}
        and ".execute-api." not in str(o.get("domainName", ""))
        and str(o.get("domainName", "")) != api_domain
    }
    groups = {
        g.get("originId")
        for g in as_list(props.get("originGroups"))
        if origins & {m.get("originId") for m in as_list(get(g, "members"))}
    }
    for pattern, behaviour in behaviours(props):
        if behaviour.get("targetOriginId") in origins | groups:
            yield pattern, behaviour


def _gate_everywhere(view: StackView) -> Iterator[Finding]:
    if not view.settings.admission.enabled:
        raise DoesNotApplyError("the waiting room is off (admission.enabled: false): no gate")
    alb_headers = _alb_headers(view)
    gates = {
        str(get(f.props, "name"))
        for f in view.of_type(T_CF_FUNCTION)
        if as_list(get(f.props, "keyValueStoreAssociations"))
    }
    for distribution in view.of_type(T_DISTRIBUTION):
        api_domain = view.settings.admission.api_domain_name
        for pattern, behaviour in _alb_behaviours(
            dict(distribution.props), alb_headers, api_domain
        ):
            attached = {
                str(a.get("functionArn", "")).rsplit("/", 1)[-1]
                for a in as_list(behaviour.get("functionAssociations"))
                if a.get("eventType") == "viewer-request"
            }
            if not attached & gates:
                yield Finding(
                    f"behaviour {pattern}.functionAssociations",
                    sorted(attached),
                    "every behaviour that reaches the load balancer carries the admission gate, "
                    "or the waiting room can be walked around",
                    distribution.urn,
                    distribution.name,
                )


def _high_demand_page_for_any_path(view: StackView) -> Iterator[Finding]:
    """Every failover status answers the high-demand page, for any path, from an origin that is
    not the one failing: a custom error response is distribution-wide, and CloudFront fetches
    its page through the behaviour matching the page's path."""
    codes = view.settings.edge.failover_status_codes
    for distribution in view.of_type(T_DISTRIBUTION):
        props = dict(distribution.props)
        pages = {
            int(r.get("errorCode", 0)): str(r.get("responsePagePath") or "")
            for r in as_list(props.get("customErrorResponses"))
        }
        buckets = {
            o.get("originId")
            for o in as_list(props.get("origins"))
            if o.get("originAccessControlId") or o.get("s3OriginConfig")
        }
        for code in codes:
            page = pages.get(code, "")
            if not page.startswith("/high-demand/"):
                yield Finding(
                    f"customErrorResponses[{code}].responsePagePath",
                    page or None,
                    "an origin answering this status must become the high-demand page",
                    distribution.urn,
                    distribution.name,
                )
            elif _behaviour_for(props, page).get("targetOriginId") not in buckets:
                yield Finding(
                    f"behaviour for {page}.targetOriginId",
                    _behaviour_for(props, page).get("targetOriginId"),
                    "the high-demand page must come from the pages bucket, not from the origin "
                    "that is failing",
                    distribution.urn,
                    distribution.name,
                )


def _behaviour_for(props: dict, path: str) -> dict:
    """The behaviour CloudFront picks for `path`: the first ordered pattern that matches."""
    for pattern, behaviour in behaviours(props)[1:]:
        if fnmatch.fnmatchcase(path, pattern):
            return behaviour
    return behaviours(props)[0][1]


def _no_lambda_at_edge(view: StackView) -> Iterator[Finding]:
    """Lambda@Edge runs in the Region of the viewer's regional edge cache, against that Region's
    concurrency (1,000 by default) and 10,000 requests/s; throttled, CloudFront answers 503.
    On a behaviour to an origin it runs on every miss (viewer events: every request)."""
    for distribution in view.of_type(T_DISTRIBUTION):
        for pattern, behaviour in behaviours(dict(distribution.props)):
            events = [
                a.get("eventType") for a in as_list(behaviour.get("lambdaFunctionAssociations"))
            ]
            if events:
                yield Finding(
                    f"behaviour {pattern}.lambdaFunctionAssociations",
                    events,
                    "no Lambda@Edge on the crowd's path: it needs each serving Region's "
                    "concurrency checked by preflight and an alarm on its throttles, which "
                    "Floodgate does not provide (use a CloudFront Function or a custom error "
                    "response)",
                    distribution.urn,
                    distribution.name,
                )


def _errors_never_shared(view: StackView) -> Iterator[Finding]:
    """CloudFront caches 400, 403 and 405 for the error-caching TTL (10 s by default) whatever
    the origin's no-store: one visitor's refusal would answer every visitor with the same cache
    key (a revoked visitor's 403 on /queue/status, a cookieless request's 400)."""
    for distribution in view.of_type(T_DISTRIBUTION):
        ttls = {
            int(r.get("errorCode", 0)): r.get("errorCachingMinTtl")
            for r in as_list(get(distribution.props, "customErrorResponses"))
        }
        for code in aws_facts.NEVER_CACHED_ERRORS:
            if ttls.get(code) != 0:
                yield Finding(
                    f"customErrorResponses[{code}].errorCachingMinTtl",
                    ttls.get(code),
                    "must be 0: a cached refusal would be every visitor's answer",
                    distribution.urn,
                    distribution.name,
                )


def _room_item_within_its_partition(view: StackView) -> Iterator[Finding]:
    """Every join and poll needs the room item; read by each, at the queue API's design point
    it alone would take more than one partition's 3,000 read units a second, and DynamoDB
    throttles that key whatever the table's capacity."""
    readers = [
        f
        for f in view.of_type(T_FUNCTION)
        if str(get(f.props, "name", "")).endswith(("-room-join", "-room-status"))
    ]
    if not readers:
        raise DoesNotApplyError("no room join or status function reads the room item")
    containers = sum(int(get(f.props, "reservedConcurrentExecutions", 0)) for f in readers)
    caches = [get(f.props, "environment.variables.FG_ROOM_CACHE_S") for f in readers]
    cache_s = min(float(c) if c is not None else 0.0 for c in caches)
    hot = room_item_reads(view.settings, containers, cache_s)
    if hot.units_per_s > aws_facts.DDB_PARTITION_READ_UNITS_PER_S:
        yield Finding(
            "environment.variables.FG_ROOM_CACHE_S",
            caches,
            f"the room item would take {hot.units_per_s:,.0f} read units/s at the design point "
            f"({hot.reads_per_s:,.0f} reads over {containers} containers); one partition serves "
            f"{aws_facts.DDB_PARTITION_READ_UNITS_PER_S:,}",
            readers[0].urn,
            readers[0].name,
        )


def _api_only_through_cloudfront(args: ResourceValidationArgs) -> Iterator[Finding]:
    """A request straight to the execute-api endpoint is refused by the handlers, but only
    after it has spent the stage's throttle and the functions' reserved concurrency."""
    if not get(args.props, "disableExecuteApiEndpoint"):
        yield Finding(
            "disableExecuteApiEndpoint",
            get(args.props, "disableExecuteApiEndpoint"),
            f"the {'inbox' if args.name.endswith('-inbox') else 'queue'} API is reached only "
            "through CloudFront: set "
            f"{'inbox' if args.name.endswith('-inbox') else 'admission'}.api_domain_name "
            "(a custom domain) so the default endpoint is disabled",
        )


def _peak_with_zone_lost(view: StackView) -> Iterator[Finding]:
    settings = view.settings
    need = peak_check(settings).instances_needed
    for group in view.of_type(T_GROUP):
        max_size = get(group.props, "maxSize", 0)
        zones = len(as_list(get(group.props, "vpcZoneIdentifiers")))
        holds = max_with_zone_lost(max_size, max(zones, 1))
        if zones < 2 or holds < need:
            yield Finding(
                "maxSize",
                max_size,
                f"with one of its {zones} zones lost the group holds {holds} instances; the "
                f"planned peak needs {need}",
                group.urn,
                group.name,
            )


def _protected(args: ResourceValidationArgs) -> Iterator[Finding]:
    if resource_settings(args).ephemeral:
        raise DoesNotApplyError("a preview stack is destroyed with its pull request")
    if not args.opts.protect:
        yield Finding(
            "protect",
            False,
            "stateful resources are protected: a replacement or deletion loses the queue, "
            "the keys or the logs",
        )
    if args.resource_type == T_TABLE and not get(args.props, "deletionProtectionEnabled"):
        yield Finding(
            "deletionProtectionEnabled",
            get(args.props, "deletionProtectionEnabled"),
            "the room table also refuses deletion outside Pulumi",
        )


def _alarms_deliver(view: StackView) -> Iterator[Finding]:
    subscribed = {get(s.props, "topic") for s in view.of_type(T_SUBSCRIPTION)}
    topics = {t.urn: t for t in view.of_type(T_TOPIC)}
    for alarm in view.of_type(T_ALARM):
        targets = [topics[u] for u in alarm.dependencies if u in topics]
        actions = as_list(get(alarm.props, "alarmActions"))
        if not actions or not targets:
            yield Finding(
                "alarmActions",
                actions,
                "every alarm notifies a topic of this stack",
                alarm.urn,
                alarm.name,
            )
            continue
        # A stack that names subscribers must deliver every alarm to one (dev and PR
        # previews name none: their alarms are read in the console).
        expected = bool(subscribed) or bool(view.settings.alarms.email_subscriptions)
        if expected and not any(a in subscribed for a in actions):
            yield Finding(
                "alarmActions",
                actions,
                "the topic has no subscription: nobody would be told",
                alarm.urn,
                alarm.name,
            )


_DOCS = "https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide"
T_QUEUE = "aws:sqs/queue:Queue"
T_INTEGRATION = "aws:apigatewayv2/integration:Integration"
SQS_DOCS = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide"


def _inbox_queues(view: StackView) -> list:
    """The inbox's queue (not its dead-letter queue); DoesNotApply without an inbox."""
    if not view.settings.inbox.enabled:
        raise DoesNotApplyError("no inbox (inbox.path_patterns is empty)")
    return [q for q in view.of_type(T_QUEUE) if "-inbox" in q.name and not q.name.endswith("-dlq")]


def _dead_letters_kept(view: StackView) -> Iterator[Finding]:
    """Each inbox queue sends what fails to a dead-letter queue of this stack that keeps it
    longer: a standard queue's DLQ keeps each message's original enqueue time."""
    queues = _inbox_queues(view)
    by_arn = {str(get(q.props, "arn")): q for q in view.of_type(T_QUEUE)}
    for queue in queues:
        policy = get(queue.props, "redrivePolicy")
        try:
            target = json.loads(policy)["deadLetterTargetArn"] if policy else None
        except (TypeError, ValueError, KeyError):
            target = None
        dlq = by_arn.get(str(target))
        if dlq is None:
            yield Finding(
                "redrivePolicy", policy, "the inbox queue has no dead-letter queue of this stack",
                queue.urn, queue.name,
            )  # fmt: skip
            continue
        kept = get(dlq.props, "messageRetentionSeconds", 345_600)
        held = get(queue.props, "messageRetentionSeconds", 345_600)
        if kept <= held:
            yield Finding(
                "messageRetentionSeconds",
                kept,
                f"the dead-letter queue must keep longer than the queue ({held} s): it keeps "
                "each message's original enqueue time, so it would expire what it receives",
                dlq.urn,
                dlq.name,
            )


def _inbox_encrypted(view: StackView) -> Iterator[Finding]:
    """The inbox's queues under a customer-managed key (not SQS's own alias/aws/sqs): who may
    read a submission is the key's policy and IAM's, and CloudTrail logs each use."""
    _inbox_queues(view)
    for queue in view.of_type(T_QUEUE):
        if "-inbox" not in queue.name:
            continue
        key = str(get(queue.props, "kmsMasterKeyId") or "")
        if not key or key.startswith("alias/aws/"):
            yield Finding(
                "kmsMasterKeyId", key or None, "inbox queues use the inbox's own KMS key",
                queue.urn, queue.name,
            )  # fmt: skip


T_SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
T_BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"


def _uploads_private(view: StackView) -> Iterator[Finding]:
    """The uploads bucket keeps bodies under the inbox's customer-managed key (SSE-KMS), and
    only CloudFront, for this stack's distribution (`AWS:SourceArn`), may write to it."""
    _inbox_queues(view)
    if not view.settings.inbox.uploads:
        raise DoesNotApplyError("no uploads (inbox.body_max_bytes is the inline limit)")
    for sse in view.of_type(T_SSE):
        if not sse.name.endswith("-inbox-uploads"):
            continue
        rules = as_list(get(sse.props, "rules"))
        default = (rules[0] if rules else {}).get("applyServerSideEncryptionByDefault") or {}
        key = str(default.get("kmsMasterKeyId") or "")
        if default.get("sseAlgorithm") != "aws:kms" or not key or key.startswith("alias/aws/"):
            yield Finding(
                "rules.0.applyServerSideEncryptionByDefault", default,
                "uploads are encrypted with the inbox's own KMS key (SSE-KMS)", sse.urn, sse.name,
            )  # fmt: skip
    for policy in view.of_type(T_BUCKET_POLICY):
        if not policy.name.endswith("-inbox-uploads"):
            continue
        statements: list[dict[str, Any]] = as_list(
            policy_document(get(policy.props, "policy")).get("Statement")
        ) or [{"Effect": "Allow", "Principal": "unreadable"}]
        for statement in statements:
            if statement.get("Effect") != "Allow":
                continue
            source = (statement.get("Condition") or {}).get("StringEquals", {})
            if statement.get("Principal") != {"Service": "cloudfront.amazonaws.com"} or (
                "AWS:SourceArn" not in source
            ):
                yield Finding(
                    "policy", statement.get("Principal"),
                    "only CloudFront, for this distribution (AWS:SourceArn), writes uploads",
                    policy.urn, policy.name,
                )  # fmt: skip


def _inbox_age_alarm(view: StackView) -> Iterator[Finding]:
    """Someone is told when a submission has waited too long: an alarm on the queue's
    ApproximateAgeOfOldestMessage."""
    for queue in _inbox_queues(view):
        watched = [
            a
            for a in view.of_type(T_ALARM)
            if get(a.props, "metricName") == "ApproximateAgeOfOldestMessage"
            and get(a.props, "dimensions.QueueName") == get(queue.props, "name")
        ]
        if not watched:
            yield Finding(
                "alarms", [], "no alarm on the age of the inbox's oldest submission",
                queue.urn, queue.name,
            )  # fmt: skip


def _accept_skips_the_fleet(view: StackView) -> Iterator[Finding]:
    """Each inbox path's behaviour goes to an API whose routes put the post in SQS: no
    synchronous dependency on the fleet (the ALB) or on a Lambda on the accept path."""
    settings = view.settings
    _inbox_queues(view)
    alb_headers = _alb_headers(view)
    for distribution in view.of_type(T_DISTRIBUTION):
        props = dict(distribution.props)
        to_alb = {p for p, _ in _alb_behaviours(props, alb_headers, None)}
        patterns = {p for p, _ in behaviours(props)}
        for pattern in settings.inbox.path_patterns:
            if pattern in to_alb or pattern not in patterns:
                yield Finding(
                    f"behaviour {pattern}.targetOriginId",
                    "the load balancer" if pattern in to_alb else None,
                    "an inbox path goes to the inbox's API, never to the fleet",
                    distribution.urn,
                    distribution.name,
                )
    for integration in view.of_type(T_INTEGRATION):
        if "-inbox-send" in integration.name and (
            get(integration.props, "integrationSubtype") != "SQS-SendMessage"
        ):
            yield Finding(
                "integrationSubtype",
                get(integration.props, "integrationSubtype"),
                "the accept route is API Gateway's SQS-SendMessage integration: nothing to "
                "scale, throttle or fail between the edge and the queue",
                integration.urn,
                integration.name,
            )


RULES = [
    StackRule(
        "gate-on-every-origin-behaviour",
        "readiness",
        "Every cache behaviour that reaches the ALB runs the admission gate",
        f"{_DOCS}/cloudfront-functions-event-structure.html",
        _gate_everywhere,
    ),
    StackRule(
        "high-demand-page-for-any-path",
        "readiness",
        "Every failover status answers the high-demand page for any path, from the pages bucket",
        f"{_DOCS}/GeneratingCustomErrorResponses.html",
        _high_demand_page_for_any_path,
    ),
    StackRule(
        "no-lambda-at-edge",
        "readiness",
        "No Lambda@Edge on any behaviour: nothing per-request and regional on the crowd's path",
        f"{_DOCS}/cloudfront-limits.html#limits-lambda-at-edge",
        _no_lambda_at_edge,
    ),
    StackRule(
        "errors-never-shared",
        "readiness",
        "400, 403 and 405 are never cached: no visitor's refusal is another's answer",
        f"{_DOCS}/custom-error-pages-expiration.html",
        _errors_never_shared,
    ),
    StackRule(
        "room-item-within-its-partition",
        "readiness",
        "The room item every join and poll reads stays within one partition's 3,000 units/s",
        "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html",
        _room_item_within_its_partition,
    ),
    StackRule(
        "inbox-dead-letters-kept-longer",
        "readiness",
        "The inbox queue has a dead-letter queue that keeps its messages longer than it does",
        f"{SQS_DOCS}/sqs-dead-letter-queues.html",
        _dead_letters_kept,
    ),
    StackRule(
        "inbox-encrypted-with-its-own-key",
        "readiness",
        "The inbox's queues are encrypted with a customer-managed KMS key",
        f"{SQS_DOCS}/sqs-server-side-encryption.html",
        _inbox_encrypted,
    ),
    StackRule(
        "inbox-uploads-private-and-encrypted",
        "readiness",
        "The inbox's uploads bucket is written by the distribution only, under the inbox's key",
        f"{_DOCS}/private-content-restricting-access-to-s3.html",
        _uploads_private,
    ),
    StackRule(
        "inbox-oldest-submission-alarmed",
        "readiness",
        "An alarm watches the age of the inbox's oldest waiting submission",
        f"{SQS_DOCS}/sqs-available-cloudwatch-metrics.html",
        _inbox_age_alarm,
    ),
    StackRule(
        "inbox-accept-path-skips-the-fleet",
        "readiness",
        "Each inbox path goes from CloudFront to SQS through API Gateway, never to the fleet",
        "https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-aws-services-reference.html",
        _accept_skips_the_fleet,
    ),
    ResourceRule(
        "queue-api-only-through-cloudfront",
        "readiness",
        "The queue API's default execute-api endpoint is disabled behind a custom domain",
        "https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-disable-default-endpoint.html",
        (T_API,),
        _api_only_through_cloudfront,
        Exemption(
            "PR previews have no custom domain of their own: the endpoint stays public and the "
            "handlers refuse any request without the origin secret",
            lambda args: resource_settings(args).ephemeral,
        ),
    ),
    StackRule(
        "fleet-carries-peak-with-zone-lost",
        "readiness",
        "The fleet's max, with one zone lost, carries the planned peak",
        "https://docs.aws.amazon.com/autoscaling/ec2/userguide/auto-scaling-benefits.html",
        _peak_with_zone_lost,
    ),
    ResourceRule(
        "stateful-resources-protected",
        "readiness",
        "Room table, key-value store, buckets and secrets are protected from deletion",
        "https://www.pulumi.com/docs/iac/concepts/options/protect/",
        STATEFUL,
        _protected,
    ),
    StackRule(
        "alarms-reach-a-topic",
        "readiness",
        "Every alarm notifies a subscribed topic of this stack",
        "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/Notify_Users_Alarm_Changes.html",
        _alarms_deliver,
    ),
]
