"""How a Floodgate rule is written: one check, one AWS rule, one documentation link.

A rule is a real `pulumi_policy` policy, so `pulumi preview --policy-pack policies` runs it in
the engine; `policies/offline.py` runs the very same objects over an offline plan. A check
yields `Finding`s; the policy turns each into a message that names the resource, the property,
the value and the AWS rule with its link. A deliberate departure is a documented `Exception`:
the check is not run, and the engine (and `make policy`) reports it as not applicable, with
the reason — never a silent skip. A check with nothing to hold on a stack or resource raises
`DoesNotApplyError` with the reason: `make policy` says n/a, not pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from planning.settings import Settings, SettingsError, load_stack_settings

Group = Literal["apply-time", "readiness", "baseline"]


@dataclass(frozen=True)
class Finding:
    """What is wrong: `prop` (engine path, camelCase) holds `value`, which breaks the rule."""

    prop: str
    value: Any
    rule: str
    urn: str | None = None
    """For stack rules: the resource at fault (None: the stack as a whole)."""
    name: str | None = None


@dataclass(frozen=True)
class Exemption:
    """A control this project deliberately does not meet, for resources matching `applies`."""

    reason: str
    applies: Callable[[ResourceValidationArgs], bool]
    """True when the exception covers this resource."""


EXCEPTION_PREFIX = "documented exception: "
NOT_APPLICABLE_PREFIX = "n/a: "
"""How a not-applicable reason begins: a deliberate departure, or a rule with nothing to hold
on this stack or resource (the engine shows both as not applicable, with the reason)."""


class DoesNotApplyError(Exception):
    """Raised by a check whose rule has nothing to hold here (a preview stack keeps nothing
    past its pull request; a group with no warm pool has no pool to cap): reported as n/a with
    `reason`, never counted as a pass."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


ResourceCheck = Callable[[ResourceValidationArgs], Iterable[Finding]]
StackCheck = Callable[["StackView"], Iterable[Finding]]


def _message(name: str, finding: Finding, url: str) -> str:
    return f"{name}: {finding.prop} = {finding.value!r}: {finding.rule} ({url})"


def _checked(
    check: Callable[[Any], Iterable[Finding]],
    subject: Any,
    args: ResourceValidationArgs | StackValidationArgs,
) -> list[Finding]:
    """`check(subject)`'s findings; a check that raises DoesNotApplyError marks the rule not
    applicable, with its reason (the engine's `not_applicable` raises: nothing is reported)."""
    try:
        return list(check(subject))
    except DoesNotApplyError as na:
        args.not_applicable(f"{NOT_APPLICABLE_PREFIX}{na.reason}")
        raise  # not reached: not_applicable raises


class ResourceRule(ResourceValidationPolicy):
    """A rule over resources of `types`; `check` sees one resource's inputs at a time."""

    def __init__(
        self,
        name: str,
        group: Group,
        description: str,
        url: str,
        types: tuple[str, ...],
        check: ResourceCheck,
        exemption: Exemption | None = None,
    ) -> None:
        self.group, self.types, self.doc_url, self.exemption = group, types, url, exemption

        def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
            if args.resource_type not in types:
                return
            if exemption is not None and exemption.applies(args):
                args.not_applicable(f"{EXCEPTION_PREFIX}{exemption.reason}")
            for finding in _checked(check, args, args):
                report(_message(args.name, finding, url), None)

        super().__init__(
            name, description, validate, enforcement_level=EnforcementLevel.MANDATORY, url=url
        )


class StackRule(StackValidationPolicy):
    """A rule over the whole stack: relations between resources, and the stack's settings."""

    def __init__(
        self, name: str, group: Group, description: str, url: str, check: StackCheck
    ) -> None:
        self.group, self.doc_url = group, url

        def validate(args: StackValidationArgs, report: ReportViolation) -> None:
            for finding in _checked(check, StackView.of(args), args):
                label = finding.name or "stack"
                report(_message(label, finding, url), finding.urn)

        super().__init__(
            name, description, validate, enforcement_level=EnforcementLevel.MANDATORY, url=url
        )


@dataclass(frozen=True)
class Resource:
    """What a stack rule reads of one resource (engine names: camelCase props)."""

    urn: str
    type: str
    name: str
    props: Mapping[str, Any]
    protect: bool
    ignore_changes: tuple[str, ...]
    dependencies: tuple[str, ...]


@dataclass(frozen=True)
class StackView:
    """The stack's resources and the settings of the stack they belong to."""

    stack: str
    resources: tuple[Resource, ...]

    @classmethod
    def of(cls, args: StackValidationArgs) -> StackView:
        resources = tuple(
            Resource(
                urn=r.urn,
                type=r.resource_type,
                name=r.name,
                props=r.props,
                protect=bool(r.opts.protect),
                ignore_changes=tuple(r.opts.ignore_changes or ()),
                dependencies=tuple(d.urn for d in r.dependencies),
            )
            for r in args.resources
        )
        stack = stack_of(resources[0].urn) if resources else ""
        return cls(stack, resources)

    def of_type(self, token: str) -> list[Resource]:
        return [r for r in self.resources if r.type == token]

    def by_urn(self, urn: str) -> Resource | None:
        return next((r for r in self.resources if r.urn == urn), None)

    @property
    def settings(self) -> Settings:
        return settings_for(self.stack)


def stack_of(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::<type>::<name>` -> `<stack>`."""
    return urn.split("::", 1)[0].removeprefix("urn:pulumi:")


@cache
def settings_for(stack: str) -> Settings:
    """The stack file's settings; a `pr-<N>` stack is made from the `pr` template."""
    template = "pr" if re.fullmatch(r"pr-\d+", stack) else stack
    try:
        return load_stack_settings(template)
    except SettingsError as exc:
        raise SettingsError(f"policy pack: settings of stack {stack!r}: {exc}") from None


def resource_settings(args: ResourceValidationArgs) -> Settings:
    return settings_for(stack_of(args.urn))
