"""Run the pack's own policy objects over an offline plan, as the engine would run them.

The engine hands a resource policy each resource's inputs and options, and a stack policy
every resource with its outputs and dependencies; this adapter builds the same argument
objects from an offline evaluation (scripts/offline_cloud.py) and calls the same `validate`.
Nothing here decides a verdict: a rule that reports is a failure, a documented exception is
an exception, a rule with nothing to hold here is n/a (with its reason), anything else that
applied is a pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.policy import _NotApplicableError

from policies import RULES
from policies.rule import EXCEPTION_PREFIX, NOT_APPLICABLE_PREFIX, ResourceRule, StackRule

Outcome = Literal["pass", "fail", "exception", "n/a"]


@dataclass(frozen=True)
class PlanResource:
    """One planned resource, secrets revealed (rules read values, never print secrets)."""

    urn: str
    type: str
    name: str
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    protect: bool = False
    ignore_changes: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    parent: str | None = None
    create_timeout_s: float = 0


def label(token: str, name: str) -> str:
    """`Group floodgate-prod`: names repeat across types, so the type leads."""
    return f"{token.rsplit(':', 1)[-1]} {name}"


@dataclass(frozen=True)
class Verdict:
    rule: str
    group: str
    resource: str
    outcome: Outcome
    message: str


def _options(r: PlanResource) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=r.protect,
        ignore_changes=list(r.ignore_changes),
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(r.create_timeout_s, 0, 0),
        additional_secret_outputs=[],
        parent=r.parent,
    )


def _resource_verdicts(rule: ResourceRule, resources: Sequence[PlanResource]) -> list[Verdict]:
    verdicts = []
    for r in (r for r in resources if r.type in rule.types):
        reports: list[str] = []
        where = label(r.type, r.name)
        args = ResourceValidationArgs(r.type, dict(r.inputs), r.urn, r.name, _options(r), None)
        try:
            rule.validate(args, lambda message, _urn=None, out=reports: out.append(message))
        except _NotApplicableError as exc:
            verdicts.append(Verdict(rule.name, rule.group, where, *_not_applicable(exc)))
            continue
        verdicts += [Verdict(rule.name, rule.group, where, "fail", m) for m in reports] or [
            Verdict(rule.name, rule.group, where, "pass", "")
        ]
    return verdicts


def _not_applicable(exc: _NotApplicableError) -> tuple[Outcome, str]:
    """A documented exception (its message as the engine shows it), or a rule with nothing to
    hold here: n/a and the reason."""
    message = str(exc.message or "")
    if message.startswith(EXCEPTION_PREFIX):
        return "exception", message
    return "n/a", message.removeprefix(NOT_APPLICABLE_PREFIX)


def _stack_args(resources: Sequence[PlanResource]) -> StackValidationArgs:
    by_urn = {
        r.urn: PolicyResource(
            r.type, dict(r.outputs), r.urn, r.name, _options(r), None, None, [], {}
        )
        for r in resources
    }
    for r in resources:
        resource = by_urn[r.urn]
        resource.parent = by_urn.get(r.parent or "")
        resource.dependencies = [by_urn[u] for u in r.dependencies if u in by_urn]
    return StackValidationArgs(list(by_urn.values()))


def _stack_verdicts(rule: StackRule, args: StackValidationArgs) -> list[Verdict]:
    names = {r.urn: label(r.resource_type, r.name) for r in args.resources}
    reports: list[tuple[str, str | None]] = []
    try:
        rule.validate(args, lambda message, urn=None: reports.append((message, urn)))
    except _NotApplicableError as exc:
        return [Verdict(rule.name, rule.group, "stack", *_not_applicable(exc))]
    return [
        Verdict(rule.name, rule.group, names.get(urn or "", "stack"), "fail", message)
        for message, urn in reports
    ] or [Verdict(rule.name, rule.group, "stack", "pass", "")]


def evaluate(
    resources: Sequence[PlanResource], rules: Iterable[ResourceRule | StackRule] = RULES
) -> list[Verdict]:
    """Every rule over the plan: one verdict per (rule, resource it applies to)."""
    stack_args = _stack_args(resources)
    verdicts: list[Verdict] = []
    for rule in rules:
        if isinstance(rule, ResourceRule):
            verdicts += _resource_verdicts(rule, resources)
        else:
            verdicts += _stack_verdicts(rule, stack_args)
    return verdicts
