"""What AWS refuses, or does differently, when `pulumi up` applies the plan.

Mocks accept every one of these; AWS does not. Each rule cites the page that states the rule.
"""

from __future__ import annotations

from collections.abc import Iterator

from pulumi_policy import ResourceValidationArgs

from planning import aws_facts
from planning.capacity import INBOX_RECEIPT_SUFFIX, ORIGIN_VERIFY_SUFFIX
from policies.props import as_list, get, policy_document, statements
from policies.rule import (
    DoesNotApplyError,
    Exemption,
    Finding,
    ResourceRule,
    StackRule,
    StackView,
    resource_settings,
)

T_TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
T_TABLE = "aws:dynamodb/table:Table"
T_GROUP = "aws:autoscaling/group:Group"
T_DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
T_LB = "aws:lb/loadBalancer:LoadBalancer"
T_SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
T_WEB_ACL = "aws:wafv2/webAcl:WebAcl"
T_TOPIC = "aws:sns/topic:Topic"
T_KEY = "aws:kms/key:Key"
T_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
T_FUNCTION = "aws:lambda/function:Function"
T_INVOKE_CONFIG = "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"
T_SCHEDULE = "aws:scheduler/schedule:Schedule"
T_POLICY = "aws:autoscaling/policy:Policy"
T_LISTENER_RULE = "aws:lb/listenerRule:ListenerRule"
T_OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
T_BUCKET = "aws:s3/bucket:Bucket"
T_ROLE = "aws:iam/role:Role"
T_ACTION = "aws:autoscaling/schedule:Schedule"
T_LIFECYCLE_HOOK = "aws:autoscaling/lifecycleHook:LifecycleHook"
RESERVATION_WAIT_S = 4 * 3600
"""A create timeout under which a reservation on create can fail `pulumi up`: AWS fulfils most
requests "within a few minutes, but can take up to a few hours"."""


def _slow_start_with_lor(args: ResourceValidationArgs) -> Iterator[Finding]:
    if get(args.props, "slowStart", 0) and (
        get(args.props, "loadBalancingAlgorithmType") == "least_outstanding_requests"
    ):
        yield Finding(
            "slowStart",
            args.props["slowStart"],
            "slow start cannot be enabled together with least outstanding requests",
        )


def _warm_throughput_within_quota(args: ResourceValidationArgs) -> Iterator[Finding]:
    quota = resource_settings(args).admission.table_quota_units_per_s
    for key in ("writeUnitsPerSecond", "readUnitsPerSecond"):
        value = get(args.props, f"warmThroughput.{key}", 0)
        if value > quota:
            yield Finding(
                f"warmThroughput.{key}",
                value,
                f"a table can be pre-warmed only up to its table-level throughput quota "
                f"({quota:,}/s here; AWS's default is {aws_facts.DDB_TABLE_QUOTA_UNITS_PER_S:,})",
            )


def _warm_pool_capped(args: ResourceValidationArgs) -> Iterator[Finding]:
    pool = get(args.props, "warmPool")
    if pool is None:
        raise DoesNotApplyError("the group has no warm pool")
    prepared = get(pool, "maxGroupPreparedCapacity", -1)
    if prepared < 0:
        yield Finding(
            "warmPool.maxGroupPreparedCapacity",
            get(pool, "maxGroupPreparedCapacity"),
            "without it the pool keeps max size - desired instances prepared, not min_size",
        )


def behaviours(props: dict) -> list[tuple[str, dict]]:
    """(path pattern, behaviour) for every cache behaviour, the default one as `*`."""
    out = [("*", get(props, "defaultCacheBehavior", {}))]
    out += [(b.get("pathPattern", "?"), b) for b in as_list(get(props, "orderedCacheBehaviors"))]
    return out


# Values AWS or the pre-scale job change at run time: `pulumi up` (and a refresh) must leave
# them alone, or it drops capacity mid-event, spends an LCU decrease or replaces the table.
RUNTIME_MANAGED: dict[str, tuple[tuple[str, str | None], ...]] = {
    T_GROUP: (
        ("desiredCapacity", None),
        ("minSize", None),
        ("maxSize", None),
        ("warmPool", "warmPool"),
    ),
    T_LB: (("minimumLoadBalancerCapacity", "minimumLoadBalancerCapacity"),),
    T_TABLE: (("warmThroughput", "warmThroughput"),),
    T_SECRET_VERSION: (("secretString", None), ("versionStages", None)),
    # The runner owns the actions' sizes: the floor an operator raised, a max they raised.
    T_ACTION: (("minSize", None), ("maxSize", None), ("desiredCapacity", None)),
}
"""type -> (property to ignore, property whose presence makes it apply (None: always))."""


def _runtime_managed_ignored(args: ResourceValidationArgs) -> Iterator[Finding]:
    ignored = set(args.opts.ignore_changes or ())
    for prop, when in RUNTIME_MANAGED[args.resource_type]:
        if when is not None and get(args.props, when) is None:
            continue
        if not any(i == prop or i.startswith(f"{prop}.") for i in ignored):
            yield Finding(
                "ignoreChanges",
                sorted(ignored),
                f"{prop} is managed at run time (scheduled actions, the pre-scale runner, AWS); "
                "without ignore_changes a `pulumi up --refresh` reverts it",
            )


def _reservation_not_waited_on(args: ResourceValidationArgs) -> Iterator[Finding]:
    """terraform-provider-aws, which pulumi-aws bridges, waits for a reservation asked for on
    create until it is provisioned, with the create timeout (10 minutes by default), and sets
    the load balancer's attributes (access logs, deletion protection, desync mode) only after:
    a slow reservation fails the first `pulumi up` half-applied."""
    units = get(args.props, "minimumLoadBalancerCapacity.capacityUnits", 0)
    waits = args.opts.custom_timeouts.create_seconds if args.opts.custom_timeouts else 0
    if units and waits < RESERVATION_WAIT_S:
        yield Finding(
            "minimumLoadBalancerCapacity",
            {"capacityUnits": units, "createTimeoutSeconds": waits},
            "a reservation on create is waited for (10 minutes unless a custom create timeout "
            "says more) and can take up to a few hours: leave it to the pre-scale runner, or "
            f"set custom_timeouts create to at least {RESERVATION_WAIT_S // 3600}h",
        )


LAUNCHING = "autoscaling:EC2_INSTANCE_LAUNCHING"


def _warm_pool_waits_for_bootstrap(view: StackView) -> Iterator[Finding]:
    """AWS stops an instance launching into the warm pool as soon as it has launched, without
    waiting for user data; only a launch lifecycle hook holds it until its bootstrap is done,
    and one shorter than the bootstrap abandons instances the plan counts on. The hook is the
    group's initial one (a new group) or a LifecycleHook of its own (an existing group, whose
    ignored initial hooks the engine shows as they were)."""
    for group in view.of_type(T_GROUP):
        if get(group.props, "warmPool") is None:
            continue
        hooks = [h for h in as_list(get(group.props, "initialLifecycleHooks"))]
        hooks += [
            dict(h.props)
            for h in view.of_type(T_LIFECYCLE_HOOK)
            if group.urn in h.dependencies
            or get(h.props, "autoscalingGroupName") == get(group.props, "name")
        ]
        launching = [h for h in hooks if h.get("lifecycleTransition") == LAUNCHING]
        if not launching:
            yield Finding(
                "lifecycle hooks",
                None,
                "a warm pool without a launch lifecycle hook stops instances before their user "
                "data finishes, and they enter service with their bootstrap cut short",
                group.urn,
                group.name,
            )
            continue
        cold = view.settings.prescale.cold_launch_s
        timeout = max(h.get("heartbeatTimeout", 3600) for h in launching)
        if timeout < cold:
            yield Finding(
                "heartbeatTimeout",
                timeout,
                f"shorter than prescale.cold_launch_s ({cold} s): the hook gives up on an "
                "instance whose bootstrap takes as long as the plan assumes",
                group.urn,
                group.name,
            )


def _initial_hooks_never_replace_the_group(args: ResourceValidationArgs) -> Iterator[Finding]:
    """terraform-provider-aws declares a group's initial_lifecycle_hook ForceNew: adding one to
    a running group, or changing its timeout, replaces the group with an empty one."""
    if get(args.props, "initialLifecycleHooks") is None:
        raise DoesNotApplyError("the group declares no initial lifecycle hook")
    if "initialLifecycleHooks" not in set(args.opts.ignore_changes or ()):
        yield Finding(
            "ignoreChanges",
            sorted(args.opts.ignore_changes or ()),
            "initialLifecycleHooks forces a new group when it changes: ignore it after creation "
            "and carry the hook on an existing group with an autoscaling.LifecycleHook",
        )


def _no_auto_rollback(args: ResourceValidationArgs) -> Iterator[Finding]:
    if get(args.props, "instanceRefresh.preferences.autoRollback"):
        yield Finding(
            "instanceRefresh.preferences.autoRollback",
            True,
            "the provider moves the group to the new template before the refresh starts, so a "
            "rollback returns to the new version (terraform-provider-aws #34189)",
        )


def _common_rules_allow_form_posts(args: ResourceValidationArgs) -> Iterator[Finding]:
    for rule in as_list(get(args.props, "rules")):
        group = get(rule, "statement.managedRuleGroupStatement", {})
        if group.get("name") != "AWSManagedRulesCommonRuleSet":
            continue
        overrides = {
            o.get("name"): next(iter(o.get("actionToUse") or {}), None)
            for o in as_list(group.get("ruleActionOverrides"))
        }
        if overrides.get("SizeRestrictions_BODY") != "count":
            yield Finding(
                f"rules[{rule.get('name')}].ruleActionOverrides.SizeRestrictions_BODY",
                overrides.get("SizeRestrictions_BODY"),
                "the common rule set blocks request bodies over 8 KB, so form posts are "
                "refused with 403 unless this rule is counted and scoped by a rule of your own",
            )


def _rate_limit_blocks(args: ResourceValidationArgs) -> Iterator[Finding]:
    for rule in as_list(get(args.props, "rules")):
        if get(rule, "statement.rateBasedStatement") is None:
            continue
        action = next(iter(get(rule, "action", {})), None)
        if action not in ("block", "challenge", "captcha"):
            yield Finding(
                f"rules[{rule.get('name')}].action",
                action,
                "a rate-based rule only limits clients when its action blocks or challenges; "
                "count merely records them",
            )


def _topics_reach_cloudwatch(view: StackView) -> Iterator[Finding]:
    for topic in view.of_type(T_TOPIC):
        key_id = get(topic.props, "kmsMasterKeyId")
        if key_id is None:
            continue
        if str(key_id).startswith("alias/aws/"):
            yield Finding(
                "kmsMasterKeyId",
                key_id,
                "CloudWatch can publish only to topics whose key policy grants "
                "cloudwatch.amazonaws.com kms:Decrypt and kms:GenerateDataKey*; an AWS-managed "
                "key's policy cannot",
                topic.urn,
                topic.name,
            )
            continue
        keys = [view.by_urn(u) for u in topic.dependencies]
        key = next((k for k in keys if k is not None and k.type == T_KEY), None)
        if key is None or not _grants_cloudwatch(key.props.get("policy")):
            yield Finding(
                "kmsMasterKeyId",
                key_id,
                "the topic's key must be declared in this stack with a policy granting "
                "cloudwatch.amazonaws.com kms:Decrypt and kms:GenerateDataKey*",
                topic.urn,
                topic.name,
            )


def _grants_cloudwatch(policy: object) -> bool:
    for statement in statements(policy_document(policy)):
        principal = get(statement, "Principal.Service")
        actions = set(as_list(statement.get("Action")))
        if (
            statement.get("Effect") == "Allow"
            and "cloudwatch.amazonaws.com" in as_list(principal)
            and {"kms:Decrypt", "kms:GenerateDataKey*"} <= actions
        ):
            return True
    return False


def _scheduled_functions_bounded(view: StackView) -> Iterator[Finding]:
    """A function a one-minute schedule invokes asynchronously must finish inside the minute
    and must not be retried: with reserved concurrency 1 an overrun throttles the next run,
    which Lambda then retries for up to 6 hours."""
    configs = {get(c.props, "functionName"): c for c in view.of_type(T_INVOKE_CONFIG)}
    for schedule in view.of_type(T_SCHEDULE):
        period_s = _rate_s(get(schedule.props, "scheduleExpression", ""))
        target = get(schedule.props, "target.arn")
        function = next(
            (f for f in view.of_type(T_FUNCTION) if f.urn in schedule.dependencies), None
        )
        if period_s is None or function is None:
            continue
        timeout = get(function.props, "timeout", 3)
        if timeout >= period_s:
            yield Finding(
                "timeout",
                timeout,
                f"runs every {period_s} s: a run longer than that overlaps the next",
                function.urn,
                function.name,
            )
        config = configs.get(get(function.props, "name")) or configs.get(target)
        if (
            config is None
            or get(config.props, "maximumRetryAttempts", 2) != 0
            or (get(config.props, "maximumEventAgeInSeconds", 21_600) > period_s)
        ):
            yield Finding(
                "FunctionEventInvokeConfig",
                None if config is None else dict(config.props),
                f"asynchronous invocations are retried twice and kept up to 6 hours unless "
                f"an invoke config sets 0 retries and a maximum event age <= {period_s} s",
                function.urn,
                function.name,
            )


def _rate_s(expression: str) -> int | None:
    """`rate(1 minute)` -> 60; None for cron and one-time schedules."""
    if not expression.startswith("rate(") or not expression.endswith(")"):
        return None
    amount, unit = expression[5:-1].split()
    return (
        int(amount)
        * {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86_400, "days": 86_400}[
            unit
        ]
    )


def _request_scaling_after_listener_rule(view: StackView) -> Iterator[Finding]:
    """ALBRequestCountPerTarget needs the target group attached to the load balancer: AWS
    rejects the policy until a listener rule forwards to it."""
    forwarding = {r.urn for r in view.of_type(T_LISTENER_RULE)}
    for policy in view.of_type(T_POLICY):
        metric = get(
            policy.props,
            "targetTrackingConfiguration.predefinedMetricSpecification.predefinedMetricType",
        )
        if metric == "ALBRequestCountPerTarget" and not forwarding & set(policy.dependencies):
            yield Finding(
                "dependsOn",
                list(policy.dependencies),
                "ALBRequestCountPerTarget is refused until the target group is attached to the "
                "load balancer: depend on the listener rule that forwards to it",
                policy.urn,
                policy.name,
            )


def _distribution_after_log_acls(view: StackView) -> Iterator[Finding]:
    """CloudFront standard logs need ACLs on the bucket: the distribution must be created
    after the bucket's ownership controls allow them."""
    ownership = {o.urn for o in view.of_type(T_OWNERSHIP)}
    for distribution in view.of_type(T_DISTRIBUTION):
        if get(distribution.props, "loggingConfig.bucket") is None:
            continue
        if not ownership & set(distribution.dependencies):
            yield Finding(
                "loggingConfig.bucket",
                get(distribution.props, "loggingConfig.bucket"),
                "the log bucket must enable ACLs (ownership controls) before CloudFront is "
                "pointed at it: depend on its BucketOwnershipControls",
                distribution.urn,
                distribution.name,
            )


_DOCS = "https://docs.aws.amazon.com"
RULES = [
    ResourceRule(
        "alb-slow-start-excludes-least-outstanding",
        "apply-time",
        "A target group cannot use slow start with least outstanding requests",
        f"{_DOCS}/elasticloadbalancing/latest/application/edit-target-group-attributes.html",
        (T_TARGET_GROUP,),
        _slow_start_with_lor,
    ),
    ResourceRule(
        "dynamodb-warm-throughput-within-quota",
        "apply-time",
        "Warm throughput cannot exceed the account's table-level throughput quota",
        f"{_DOCS}/amazondynamodb/latest/developerguide/warm-throughput.html",
        (T_TABLE,),
        _warm_throughput_within_quota,
    ),
    ResourceRule(
        "warm-pool-caps-prepared-capacity",
        "apply-time",
        "A warm pool sets max_group_prepared_capacity, or AWS keeps max - desired prepared",
        f"{_DOCS}/autoscaling/ec2/userguide/ec2-auto-scaling-warm-pools.html",
        (T_GROUP,),
        _warm_pool_capped,
    ),
    ResourceRule(
        "runtime-managed-values-ignored",
        "apply-time",
        "Capacity, reservations, warm throughput and rotated secrets are not reverted by Pulumi",
        "https://www.pulumi.com/docs/iac/concepts/options/ignorechanges/",
        tuple(RUNTIME_MANAGED),
        _runtime_managed_ignored,
        Exemption(
            "the origin-verify secret and the inbox's receipt secret hold Pulumi's own values "
            "(rewritten when a slot rotates, as the ALB's listener rule is, or with the edge's "
            "copy of the receipt secret); nothing changes them at run time",
            lambda args: (
                args.resource_type == T_SECRET_VERSION
                and args.name.endswith((ORIGIN_VERIFY_SUFFIX, INBOX_RECEIPT_SUFFIX))
            ),
        ),
    ),
    ResourceRule(
        "alb-reservation-not-waited-on-create",
        "apply-time",
        "An ALB is not created with an LCU reservation the provider would wait minutes for",
        f"{_DOCS}/elasticloadbalancing/latest/application/request-capacity-unit-reservation.html",
        (T_LB,),
        _reservation_not_waited_on,
    ),
    StackRule(
        "warm-pool-waits-for-bootstrap",
        "apply-time",
        "A warm pool's group holds launches with a lifecycle hook until the bootstrap is done",
        f"{_DOCS}/autoscaling/ec2/userguide/warm-pool-instance-lifecycle.html",
        _warm_pool_waits_for_bootstrap,
    ),
    ResourceRule(
        "initial-hooks-never-replace-the-group",
        "apply-time",
        "A group's initial lifecycle hooks are ignored after creation (the provider replaces it)",
        "https://www.pulumi.com/registry/packages/aws/api-docs/autoscaling/group/",
        (T_GROUP,),
        _initial_hooks_never_replace_the_group,
    ),
    ResourceRule(
        "instance-refresh-without-auto-rollback",
        "apply-time",
        "Instance refresh auto rollback does not work with the provider's template updates",
        "https://github.com/hashicorp/terraform-provider-aws/issues/34189",
        (T_GROUP,),
        _no_auto_rollback,
    ),
    ResourceRule(
        "waf-common-rules-allow-form-posts",
        "apply-time",
        "The common rule set's 8 KB body limit is counted, not blocking form posts",
        f"{_DOCS}/waf/latest/developerguide/aws-managed-rule-groups-baseline.html",
        (T_WEB_ACL,),
        _common_rules_allow_form_posts,
    ),
    ResourceRule(
        "waf-rate-limit-blocks",
        "apply-time",
        "Per-IP rate rules block (or challenge), never only count",
        f"{_DOCS}/waf/latest/developerguide/waf-rule-statement-type-rate-based.html",
        (T_WEB_ACL,),
        _rate_limit_blocks,
    ),
    StackRule(
        "alarm-topics-decryptable-by-cloudwatch",
        "apply-time",
        "Encrypted alarm topics use a customer-managed key that grants CloudWatch",
        f"{_DOCS}/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services",
        _topics_reach_cloudwatch,
    ),
    StackRule(
        "scheduled-functions-bounded",
        "apply-time",
        "A function on a rate schedule ends within the period and is never retried late",
        f"{_DOCS}/lambda/latest/dg/invocation-async-error-handling.html",
        _scheduled_functions_bounded,
    ),
    StackRule(
        "request-scaling-after-listener-rule",
        "apply-time",
        "ALBRequestCountPerTarget policies are created after the target group is attached",
        f"{_DOCS}/autoscaling/application/APIReference/API_PredefinedMetricSpecification.html",
        _request_scaling_after_listener_rule,
    ),
    StackRule(
        "distribution-after-log-bucket-acls",
        "apply-time",
        "CloudFront logging is configured after the bucket enables ACLs",
        f"{_DOCS}/AmazonCloudFront/latest/DeveloperGuide/standard-logging-legacy-s3.html",
        _distribution_after_log_acls,
    ),
]
