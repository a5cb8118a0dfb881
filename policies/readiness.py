"""Surge readiness: what must hold for the night itself, whatever AWS accepts."""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import ResourceValidationArgs

from planning.capacity import max_with_zone_lost, peak_check
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
from policies.props import as_list, get
from policies.rule import Finding, ResourceRule, StackRule, StackView, resource_settings

T_KVS = "aws:cloudfront/keyValueStore:KeyValueStore"
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


def _alb_behaviours(props: dict, alb_headers: set[str]) -> Iterator[tuple[str, dict]]:
    """Behaviours that reach the load balancer: its origin, or an origin group holding it. The
    queue API's origin carries the same header (its handlers check it too) but is API Gateway's
    `<id>.execute-api.<region>.amazonaws.com`."""
    origins = {
        o.get("originId")
        for o in as_list(props.get("origins"))
        if alb_headers & {str(h.get("name", "")).lower() for h in as_list(o.get("customHeaders"))}
        and ".execute-api." not in str(o.get("domainName", ""))
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
        return
    alb_headers = _alb_headers(view)
    gates = {
        str(get(f.props, "name"))
        for f in view.of_type(T_CF_FUNCTION)
        if as_list(get(f.props, "keyValueStoreAssociations"))
    }
    for distribution in view.of_type(T_DISTRIBUTION):
        for pattern, behaviour in _alb_behaviours(dict(distribution.props), alb_headers):
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


def _failover_page_for_any_path(view: StackView) -> Iterator[Finding]:
    """After a failover CloudFront asks the secondary (S3) for the viewer's own path; only an
    origin-request trigger, which runs again for the secondary, can point it at the page."""
    for distribution in view.of_type(T_DISTRIBUTION):
        groups = {g.get("originId") for g in as_list(get(distribution.props, "originGroups"))}
        for pattern, behaviour in behaviours(dict(distribution.props)):
            if behaviour.get("targetOriginId") not in groups:
                continue
            events = {
                a.get("eventType") for a in as_list(behaviour.get("lambdaFunctionAssociations"))
            }
            if "origin-request" not in events:
                yield Finding(
                    f"behaviour {pattern}.lambdaFunctionAssociations",
                    sorted(e for e in events if e),
                    "a failed-over request for a deep path reaches the pages bucket as that "
                    "path and gets S3's AccessDenied unless an origin-request trigger rewrites it",
                    distribution.urn,
                    distribution.name,
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
        return  # preview stacks are destroyed with their pull request
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
        if subscribed and not any(a in subscribed for a in actions):
            yield Finding(
                "alarmActions",
                actions,
                "the topic has no subscription: nobody would be told",
                alarm.urn,
                alarm.name,
            )


def _edge_functions_exist(view: StackView) -> Iterator[Finding]:
    """Guard for the failover rule: the trigger it relies on is a function of this stack."""
    names = {str(get(f.props, "name")) for f in view.of_type(T_FUNCTION)}
    for distribution in view.of_type(T_DISTRIBUTION):
        for pattern, behaviour in behaviours(dict(distribution.props)):
            for assoc in as_list(behaviour.get("lambdaFunctionAssociations")):
                name = str(assoc.get("lambdaArn", "")).split(":function:")[-1].split(":")[0]
                if name not in names:
                    yield Finding(
                        f"behaviour {pattern}.lambdaFunctionAssociations",
                        assoc.get("lambdaArn"),
                        "names a function this stack does not declare",
                        distribution.urn,
                        distribution.name,
                    )


_DOCS = "https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide"
RULES = [
    StackRule(
        "gate-on-every-origin-behaviour",
        "readiness",
        "Every cache behaviour that reaches the ALB runs the admission gate",
        f"{_DOCS}/cloudfront-functions-event-structure.html",
        _gate_everywhere,
    ),
    StackRule(
        "failover-page-for-any-path",
        "readiness",
        "Every origin-group behaviour answers a failed-over request with the high-demand page",
        f"{_DOCS}/high_availability_origin_failover.html#concept_origin_groups.lambda",
        _failover_page_for_any_path,
    ),
    StackRule(
        "edge-triggers-declared",
        "readiness",
        "Lambda@Edge triggers name functions this stack declares",
        f"{_DOCS}/lambda-edge-add-triggers.html",
        _edge_functions_exist,
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
