"""The whole stack: `Settings`, read from a stack file the way `pulumi up` reads it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    ValidationError,
    field_validator,
    model_validator,
)

from planning import aws_facts
from planning.settings.admission import AdmissionSettings
from planning.settings.alarms import AlarmSettings
from planning.settings.base import (
    _ACM_ARN,
    NESTED_ERROR,
    REGION_KEY,
    SETTINGS_KEY,
    STACKS_DIR,
    SettingsError,
    _at,
    _check_one_of,
    _Model,
)
from planning.settings.capacity import CapacitySettings
from planning.settings.edge import EdgeSettings, WafSettings
from planning.settings.fleet import FleetSettings
from planning.settings.inbox import InboxSettings
from planning.settings.load_balancer import LoadBalancerSettings
from planning.settings.network import NetworkSettings
from planning.settings.prescale import PrescaleSettings
from planning.settings.rehearsal import RehearsalSettings
from planning.yaml_file import YamlFileError, load_yaml


class Settings(_Model):
    """Everything one stack configures."""

    environment: Literal["dev", "staging", "prod", "pr"]
    """The stack's role; it must match the stack file's name (`prod` in Pulumi.prod.yaml;
    `pr` for PR previews). Only `pr` stacks are ephemeral: destroyed with their data."""
    region: str
    """`aws:region`, the region of the ALB, fleet and room (CloudFront, its WAF and edge
    functions are in us-east-1 whatever this is)."""
    network: NetworkSettings
    """The VPC, its zones and NAT."""
    load_balancer: LoadBalancerSettings
    """The ALB in front of the fleet."""
    fleet: FleetSettings
    """The web autoscaling group."""
    edge: EdgeSettings = EdgeSettings()
    """The CloudFront distribution."""
    waf: WafSettings = WafSettings()
    """The WAF web ACL on the distribution."""
    alarms: AlarmSettings = AlarmSettings()
    """Alarm thresholds and who is told."""
    capacity: CapacitySettings
    """The crowd to plan for: baseline, planned peak, what each user asks of the origin."""
    prescale: PrescaleSettings = PrescaleSettings()
    """How known events become capacity before they start (planning/event_plan.py)."""
    admission: AdmissionSettings = AdmissionSettings()
    """The waiting room."""
    inbox: InboxSettings = InboxSettings()
    """Submissions accepted at the edge and handed to the back office at its pace (off unless
    it names paths)."""
    rehearsal: RehearsalSettings = RehearsalSettings()
    """The budget `make rehearse` judges the configured stack against."""
    tags: dict[str, str] = {}
    """Tags on every resource, besides Floodgate's own (AWS allows 50 in all)."""

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return _check_one_of(value, aws_facts.REGION_ZONES, str(sorted(aws_facts.REGION_ZONES)))

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for key, tag in value.items():
            if key.lower().startswith("aws:") or not 1 <= len(key) <= 128 or len(tag) > 256:
                raise ValueError(
                    f"tag {key!r}: keys are 1-128 characters and may not start with 'aws:'; "
                    "values at most 256 characters"
                )
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Self:
        # Zones are checked against the region in NetworkSettings (validation context).
        cert = _ACM_ARN.match(self.load_balancer.certificate_arn)
        if cert is None:
            raise _at(
                "load_balancer.certificate_arn",
                self.load_balancer.certificate_arn,
                "must be an ACM certificate ARN",
            )
        if cert["region"] != self.region:
            raise _at(
                "load_balancer.certificate_arn",
                self.load_balancer.certificate_arn,
                f"must be in the stack's region {self.region} (an ALB uses regional certificates)",
            )
        self._room_capacity()
        self._edge_cache()
        for section in ("admission", "inbox"):
            self._api_domain(section)
        hook = self.fleet.launch_hook_timeout_s
        if self.prescale.cold_launch_s > hook:
            raise _at(
                "prescale.cold_launch_s",
                self.prescale.cold_launch_s,
                f"must be <= fleet.launch_hook_timeout_s ({hook}): the launch hook abandons an "
                "instance whose bootstrap takes longer than its timeout, so the plan's leads "
                "would count on instances AWS terminates",
            )
        if self.environment == "prod":
            if len(self.network.zones) < 3:
                raise _at(
                    "network.zones",
                    self.network.zones,
                    "prod needs at least 3 zones to keep serving with one zone down",
                )
            if self.network.nat_gateways != "per_zone":
                raise _at(
                    "network.nat_gateways",
                    self.network.nat_gateways,
                    "prod needs 'per_zone' so losing a zone does not cut egress",
                )
        uncovered = sorted(set(self.inbox.path_patterns) - set(self.edge.write_path_patterns))
        if uncovered:
            raise _at(
                "inbox.path_patterns",
                uncovered,
                f"must each be one of edge.write_path_patterns {self.edge.write_path_patterns}",
            )
        return self

    def _api_domain(self, section: Literal["admission", "inbox"]) -> None:
        """A section's API custom domain needs the hosted zone, and a certificate of the
        stack's region."""
        api = self.admission if section == "admission" else self.inbox
        if api.api_domain_name and not self.load_balancer.hosted_zone_id:
            raise _at(
                f"{section}.api_domain_name",
                api.api_domain_name,
                "needs load_balancer.hosted_zone_id: the same update that disables the API's "
                "execute-api endpoint points CloudFront at this name, so Floodgate must write "
                "its DNS record in that update, or every request fails until it resolves",
            )
        cert = api.api_certificate_arn
        if cert is not None:
            match = _ACM_ARN.match(cert)
            if match is None or match["region"] != self.region:
                raise _at(
                    f"{section}.api_certificate_arn",
                    cert,
                    f"must be an ACM certificate ARN in the stack's region {self.region} (API "
                    "Gateway's regional custom domains use certificates from their own region)",
                )

    def _edge_cache(self) -> None:
        """Public pages the plan counts on are ones the edge may cache, for the TTL the plan
        assumes; Origin Shield sits where AWS recommends for the stack's Region."""
        c, e = self.capacity, self.edge
        if c.public_page_pct > 0 and not e.public_page_patterns:
            raise _at(
                "capacity.public_page_pct",
                c.public_page_pct,
                "needs edge.public_page_patterns: the edge caches only the paths named there",
            )
        if c.public_page_ttl_s > e.public_page_max_ttl_s:
            raise _at(
                "capacity.public_page_ttl_s",
                c.public_page_ttl_s,
                f"must be <= edge.public_page_max_ttl_s ({e.public_page_max_ttl_s}): CloudFront "
                "keeps a page no longer than the cache policy's max TTL",
            )
        shield = aws_facts.ORIGIN_SHIELD_FOR.get(self.region)
        if e.origin_shield_region is not None and e.origin_shield_region != shield:
            raise _at(
                "edge.origin_shield_region",
                e.origin_shield_region,
                f"must be {shield}, the Origin Shield Region AWS recommends for {self.region}"
                if shield
                else f"AWS publishes no Origin Shield Region for {self.region}",
            )

    def _room_capacity(self) -> None:
        """An override of the room's people per instance must agree with the fleet's figures,
        and the room must be able to reopen with the fleet at its scaling target."""
        target = self.fleet.scaling_target_pct
        if self.admission.open_below_load_pct < target:
            raise _at(
                "admission.open_below_load_pct",
                self.admission.open_below_load_pct,
                f"must be at least the fleet's scaling target, {target:.1f} % "
                f"(fleet.scaling.requests_per_target {self.fleet.scaling.requests_per_target} a "
                f"minute of {self.fleet.requests_per_instance_per_s:g} req/s): target tracking "
                "holds the load there, so a lower threshold keeps the room queueing",
            )
        self._queue_api()
        override = self.admission.sessions_per_instance
        if override is None:
            return
        c = self.capacity
        derived = derived_people_per_instance(self.fleet.requests_per_instance_per_s, c)
        if not derived / 2 <= override <= derived:
            raise _at(
                "admission.sessions_per_instance",
                override,
                f"must lie between {derived // 2:,} and {derived:,}: the fleet's figures "
                f"({self.fleet.requests_per_instance_per_s:g} req/s per instance / "
                f"({c.requests_per_user_per_s:g} req/s per user x "
                f"{100 - c.edge_share_pct:g} % reaching the origin)) mean {derived:,} people "
                "per instance; leave it unset to use that",
            )

    def _queue_api(self) -> None:
        """The queue API carries the planned crowd: concurrency at least the design's, within
        the region's pool, and the stage throttle above the design's joins and polls."""
        from planning.capacity import queue_api_design  # planning.capacity imports this module

        a = self.admission
        if not a.enabled:
            return
        design = queue_api_design(
            self.model_copy(
                update={
                    "admission": a.model_copy(
                        update={"join_concurrency": None, "status_concurrency": None}
                    )
                }
            )
        )
        for key, have, need, rate in (
            ("join_concurrency", a.join_concurrency, design.join_concurrency, design.joins_per_s),
            (
                "status_concurrency",
                a.status_concurrency,
                design.status_concurrency,
                design.polls_per_s,
            ),
        ):
            if have is not None and have < need:
                raise _at(
                    f"admission.{key}",
                    have,
                    f"must be at least {need}: the planned crowd needs {rate:,.0f} requests/s "
                    "(planning.capacity.queue_api_design); leave it unset to use that",
                )
        chosen = queue_api_design(self)
        most = aws_facts.LAMBDA_DEFAULT_CONCURRENCY - aws_facts.LAMBDA_MIN_UNRESERVED
        if chosen.reserved > most:
            raise _at(
                "admission.status_concurrency",
                chosen.status_concurrency,
                f"join ({chosen.join_concurrency}) + status + inlet + admin reserved concurrency "
                f"({chosen.reserved}) must fit in {most:,} (Lambda's default 1,000 less the 100 "
                "that must stay unreserved)",
            )
        needed = design.joins_per_s + design.polls_per_s
        if a.api_rate_limit < needed:
            raise _at(
                "admission.api_rate_limit",
                a.api_rate_limit,
                f"must be at least {needed:,.0f} requests/s: the planned crowd's joins "
                f"({design.joins_per_s:,.0f}/s) and polls ({design.polls_per_s:,.0f}/s)",
            )

    @property
    def ephemeral(self) -> bool:
        """PR-preview stacks are destroyed with their pull request: `pulumi destroy` must be able
        to delete log buckets that still hold objects (force_destroy)."""
        return self.environment == "pr"

    @model_validator(mode="after")
    def _tag_count(self) -> Self:
        total, own = len(self.stack_tags), len(self.stack_tags) - len(self.tags)
        if total > aws_facts.TAGS_PER_RESOURCE:
            raise _at(
                "tags",
                len(self.tags),
                f"with Floodgate's own {own} a resource would "
                f"carry {total} tags; AWS allows {aws_facts.TAGS_PER_RESOURCE}",
            )
        return self

    @property
    def stack_tags(self) -> dict[str, str]:
        """Tags for every taggable resource: the stack's own plus Floodgate's identifiers."""
        return {"floodgate:environment": self.environment, "ManagedBy": "pulumi", **self.tags}


def derived_people_per_instance(requests_per_instance_per_s: float, c: CapacitySettings) -> int:
    """People one instance serves: its request rate over one more person's origin requests
    (the public pages the edge caches cost the origin nothing per person)."""
    per_user = c.requests_per_user_per_s * (1 - c.edge_share_pct / 100)
    return max(1, int(requests_per_instance_per_s / per_user + 1e-9))  # 150 / 0.02 is 7,499.99


def parse_stack_config(config: Mapping[str, Any]) -> Settings:
    """Build Settings from a stack's `config:` mapping (`aws:region` + `floodgate:settings`).

    Raises SettingsError naming every bad key, its value and what is allowed.
    """
    raw = config.get(SETTINGS_KEY)
    if not isinstance(raw, Mapping):
        raise SettingsError(f"{SETTINGS_KEY}: missing or not a mapping (got {raw!r})")
    region = config.get(REGION_KEY)
    if "region" in raw:
        raise SettingsError(f"{SETTINGS_KEY}.region: set the region with {REGION_KEY} instead")
    try:
        # The only way Settings are built: the context carries the region to the zones check.
        return Settings.model_validate({**raw, "region": region}, context={"region": region})
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


def load_stack_settings(stack: str, stacks_dir: Path = STACKS_DIR) -> Settings:
    """Read and validate `stacks/Pulumi.<stack>.yaml` the way `pulumi up` would."""
    path = stacks_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(
            p.name[len("Pulumi.") : -len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml")
        )
        raise SettingsError(f"stack {stack!r}: no file {path} (stacks: {', '.join(known)})")
    try:
        document = load_yaml(path)
    except YamlFileError as exc:
        raise SettingsError(str(exc)) from None
    if document is None:
        document = {}
    if not isinstance(document, Mapping):
        raise SettingsError(f"{path}: the top level must be a mapping (got {document!r:.60})")
    config = document.get("config") or {}
    if not isinstance(config, Mapping):
        raise SettingsError(f"{path}: config: must be a mapping (got {config!r:.60})")
    settings = parse_stack_config(config)
    role = "pr" if stack == "pr" or stack.startswith("pr-") else stack
    if role in ("dev", "staging", "prod", "pr") and settings.environment != role:
        raise SettingsError(
            f"{path}: {SETTINGS_KEY}.environment: {settings.environment!r} in the {stack!r} stack; "
            f"it must be {role!r} (the environment decides protection and deletion rules)"
        )
    return settings


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        loc = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == NESTED_ERROR:  # raised by _at, against a key inside the model
            ctx = error.get("ctx") or {}
            loc = ".".join(filter(None, [loc, ctx["key"]]))
            lines.append(f"{SETTINGS_KEY}.{loc}: {ctx['message']} (got {ctx['value']})")
            continue
        # The region comes from `aws:region`, not from floodgate:settings: name it so.
        key = REGION_KEY if loc == "region" else f"{SETTINGS_KEY}.{loc}"
        lines.append(f"{key}: {message} (got {error.get('input')!r})")
    return "invalid settings:\n  " + "\n  ".join(lines)
