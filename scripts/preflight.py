"""Readiness check: can this account hold the stack, and what its next events plan?

Usage: python -m scripts.preflight --stack prod [--json]

Run with the operator's credentials before the first `pulumi up` and before every event. It
only reads (Service Quotas, Lambda, DynamoDB, EC2, ACM, Route 53, IAM) and compares what the
account allows with what the stack's settings and event plan need:

  lambda-concurrency   account concurrent executions >= reserved by the room and the pre-scale
                       runner + 100 unreserved
  ec2-vcpus            Running On-Demand Standard instances vCPUs >= fleet max x vCPUs per type
  ami                  the pinned AMI exists in the region, is available, is not deprecated
                       before the last planned event, and matches the instance types' CPUs
  dynamodb-throughput  table-level read/write quota >= the room table's warm throughput
  alb-lcu-reservation  the ALB capacity-unit reservation quota >= the largest planned reservation
  certificate-origin   the regional ACM certificate is ISSUED and covers the origin name (and
                       the queue API's and the inbox's custom domains, unless each has a
                       certificate of its own)
  certificate-edge     the us-east-1 certificate is ISSUED and covers every edge domain name
  hosted-zone          the hosted zone exists, is public and holds the origin name and the
                       queue API's and the inbox's custom domains
  kvs-readers          who in the account can read the signing keys: the room's KeyValueStore or
                       the signing-key secret, directly or through a group (listed, not failed:
                       docs/architecture.md says why the keys are there and what reading grants)

Exit codes: 0 ready, 1 not ready (a check failed or could not be settled), 2 error (invalid
settings, no credentials, a call refused). AWS throttling is retried (botocore standard mode).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

if not __package__:  # run by path (`python scripts/preflight.py`): make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import scripts  # noqa: F401 - without the project's dependencies: its own interpreter

from planning import aws_facts, clock
from planning.calendar import CalendarError, load_calendar
from planning.capacity import queue_api_design, room_warm_throughput
from planning.event_plan import PlanError, plan_events
from planning.settings import RUNNER_CONCURRENCY, Settings, SettingsError, load_stack_settings
from scripts.prescale import RETRIES
from scripts.text_table import fitted

EC2_STANDARD_VCPU_QUOTA = "L-1216C47A"
"""Service Quotas code of "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances"."""
STANDARD_FAMILIES = re.compile(r"^[acdhimrtz]")
CLOUDFRONT_REGION = "us-east-1"

Verdict = Literal["ok", "FAIL", "unknown"]


@dataclass(frozen=True)
class Check:
    check: str
    target: str
    verdict: Verdict
    detail: str


@dataclass(frozen=True)
class Clients:
    """Read-only clients: the stack's region, plus ACM in us-east-1 for CloudFront."""

    lambda_: Any
    quotas: Any
    dynamodb: Any
    ec2: Any
    acm: Any
    acm_edge: Any
    route53: Any
    iam: Any

    @classmethod
    def for_region(cls, region: str) -> Clients:
        session = boto3.Session(region_name=region)

        def client(service: str, where: str = region) -> Any:
            return session.client(service, region_name=where, config=RETRIES)

        return cls(
            client("lambda"),
            client("service-quotas"),
            client("dynamodb"),
            client("ec2"),
            client("acm"),
            client("acm", CLOUDFRONT_REGION),
            client("route53"),
            client("iam"),
        )


def _at_least(name: str, target: str, have: float, need: float, unit: str) -> Check:
    ok = have >= need
    return Check(
        name,
        target,
        "ok" if ok else "FAIL",
        f"{'has' if ok else 'only'} {have:,.0f} {unit}; needs {need:,.0f}",
    )


def lambda_concurrency(clients: Clients, settings: Settings) -> Iterator[Check]:
    room = queue_api_design(settings).reserved if settings.admission.enabled else 0
    limit = clients.lambda_.get_account_settings()["AccountLimit"]["ConcurrentExecutions"]
    need = room + RUNNER_CONCURRENCY + aws_facts.LAMBDA_MIN_UNRESERVED
    yield _at_least(
        "lambda-concurrency",
        settings.region,
        limit,
        need,
        "concurrent executions (room and pre-scale runner reserved + 100 unreserved)",
    )


def ec2_vcpus(clients: Clients, settings: Settings) -> Iterator[Check]:
    types = settings.fleet.instance_types
    other = [t for t in types if not STANDARD_FAMILIES.match(t)]
    if other:
        yield Check(
            "ec2-vcpus",
            ", ".join(other),
            "unknown",
            "not a standard family: its vCPU quota is another one; check Service Quotas by hand",
        )
        return
    described = clients.ec2.describe_instance_types(InstanceTypes=types)["InstanceTypes"]
    vcpus = max(t["VCpuInfo"]["DefaultVCpus"] for t in described)
    quota = clients.quotas.get_service_quota(ServiceCode="ec2", QuotaCode=EC2_STANDARD_VCPU_QUOTA)[
        "Quota"
    ]["Value"]
    most = settings.fleet.max_size
    yield _at_least(
        "ec2-vcpus",
        settings.region,
        quota,
        most * vcpus,
        f"On-Demand standard vCPUs (max {most} x {vcpus})",
    )


def ami(clients: Clients, settings: Settings, last_event_end: datetime | None) -> Iterator[Check]:
    """`fleet.ami_id` as the launch template will ask for it. Deprecated AMIs are left out of
    DescribeImages unless asked for (`IncludeDeprecated`, EC2 API reference); a deprecated one
    still launches but is on its way out, so one deprecated before the last planned event is
    not ready either."""
    image_id, want = settings.fleet.ami_id, settings.fleet.architecture
    try:
        images = clients.ec2.describe_images(ImageIds=[image_id], IncludeDeprecated=True)["Images"]
    except ClientError as exc:
        if exc.response["Error"]["Code"].startswith("InvalidAMIID"):
            images = []
        else:
            raise
    if not images:
        yield Check("ami", image_id, "FAIL", f"no such AMI in {settings.region}")
        return
    image = images[0]
    deprecated = image.get("DeprecationTime")
    until = max(filter(None, [clock.now(), last_event_end]))

    def verdict(ok: bool, detail: str) -> Check:
        return Check("ami", image_id, "ok" if ok else "FAIL", detail)

    if image.get("State") != "available":
        yield verdict(False, f"state {image.get('State')}, not available")
    elif image.get("Architecture") != want:
        types = ", ".join(settings.fleet.instance_types)
        yield verdict(False, f"is {image.get('Architecture')}; {types} need {want}")
    elif deprecated and clock.parse_instant(deprecated, "DeprecationTime") <= until:
        planned = clock.aws_timestamp(until)
        yield verdict(False, f"deprecated from {deprecated} (planned events run to {planned})")
    else:
        yield verdict(True, f"{image.get('Name') or 'unnamed'}, {want}, available")


def dynamodb_throughput(clients: Clients, settings: Settings) -> Iterator[Check]:
    if not settings.admission.enabled:
        return
    limits = clients.dynamodb.describe_limits()
    warm = room_warm_throughput(settings.admission)
    yield _at_least(
        "dynamodb-throughput",
        "table writes",
        limits["TableMaxWriteCapacityUnits"],
        warm.writes_per_s,
        "write units/s per table (room warm)",
    )
    yield _at_least(
        "dynamodb-throughput",
        "table reads",
        limits["TableMaxReadCapacityUnits"],
        warm.reads_per_s,
        "read units/s per table (room warm)",
    )


def alb_reservation(clients: Clients, settings: Settings, largest_planned: int) -> Iterator[Check]:
    if largest_planned == 0:
        yield Check("alb-lcu-reservation", settings.region, "ok", "no reservation planned")
        return
    quota = _lcu_reservation_quota(clients)
    if quota is None:
        yield Check(
            "alb-lcu-reservation",
            settings.region,
            "unknown",
            f"no Elastic Load Balancing quota on capacity-unit reservations found; "
            f"check by hand that {largest_planned:,} LCUs may be reserved",
        )
        return
    name, value = quota
    yield _at_least(
        "alb-lcu-reservation",
        settings.region,
        value,
        largest_planned,
        f"LCUs ({name}) for the largest planned reservation",
    )


def _lcu_reservation_quota(clients: Clients) -> tuple[str, float] | None:
    """The applied quota on ALB capacity-unit reservations, found by name (Service Quotas)."""
    pages = clients.quotas.get_paginator("list_service_quotas").paginate(
        ServiceCode="elasticloadbalancing"
    )
    for page in pages:
        for quota in page["Quotas"]:
            name = quota.get("QuotaName", "")
            if re.search(r"capacity unit", name, re.I) and re.search(r"reserv", name, re.I):
                return name, quota["Value"]
    return None


def covers(certificate_names: list[str], name: str) -> bool:
    """An ACM name covers `name` exactly, or as `*.parent` for one label below parent."""
    for cert in certificate_names:
        if cert == name:
            return True
        if cert.startswith("*.") and name.count(".") >= 2 and name.split(".", 1)[1] == cert[2:]:
            return True
    return False


def _certificate(client: Any, check: str, arn: str, names: list[str], region: str) -> Check:
    region_of_arn = arn.split(":")[3] if arn.count(":") >= 5 else "?"
    if region_of_arn != region:
        return Check(check, arn, "FAIL", f"is in {region_of_arn}; must be in {region}")
    try:
        cert = client.describe_certificate(CertificateArn=arn)["Certificate"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return Check(check, arn, "FAIL", f"no such certificate in {region}")
        raise
    held = [cert.get("DomainName", ""), *cert.get("SubjectAlternativeNames", [])]
    missing = [n for n in names if not covers(held, n)]
    if cert.get("Status") != "ISSUED":
        return Check(check, arn, "FAIL", f"status {cert.get('Status')}, not ISSUED")
    if missing:
        return Check(check, arn, "FAIL", f"does not cover {', '.join(missing)}")
    return Check(check, arn, "ok", f"ISSUED, covers {', '.join(names)}")


def api_domains(settings: Settings) -> list[tuple[str, str, str | None]]:
    """(check name, custom domain, its own certificate or None: the load balancer's) of each
    HTTP API the stack reaches by a custom domain: the queue API's and the inbox's."""
    a, i = settings.admission, settings.inbox
    found = []
    if a.enabled and a.api_domain_name:
        found.append(("certificate-queue-api", a.api_domain_name, a.api_certificate_arn))
    if i.enabled and i.api_domain_name:
        found.append(("certificate-inbox-api", i.api_domain_name, i.api_certificate_arn))
    return found


def certificates(clients: Clients, settings: Settings) -> Iterator[Check]:
    lb, edge = settings.load_balancer, settings.edge
    apis = api_domains(settings)
    yield _certificate(
        clients.acm,
        "certificate-origin",
        lb.certificate_arn,
        [lb.origin_domain_name, *(name for _, name, cert in apis if cert is None)],
        settings.region,
    )
    for check, name, cert in apis:
        if cert is not None:
            yield _certificate(clients.acm, check, cert, [name], settings.region)
    if edge.certificate_arn:
        yield _certificate(
            clients.acm_edge,
            "certificate-edge",
            edge.certificate_arn,
            edge.domain_names,
            CLOUDFRONT_REGION,
        )


def hosted_zone(clients: Clients, settings: Settings) -> Iterator[Check]:
    zone_id = settings.load_balancer.hosted_zone_id
    names = [settings.load_balancer.origin_domain_name]
    names += [name for _, name, _ in api_domains(settings)]
    if not zone_id:
        return
    try:
        zone = clients.route53.get_hosted_zone(Id=zone_id)["HostedZone"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchHostedZone":
            yield Check("hosted-zone", zone_id, "FAIL", "no such hosted zone")
            return
        raise
    name = zone["Name"].rstrip(".")
    if zone.get("Config", {}).get("PrivateZone"):
        yield Check(
            "hosted-zone", zone_id, "FAIL", f"{name} is private; CloudFront needs public DNS"
        )
    elif outside := [n for n in names if n != name and not n.endswith(f".{name}")]:
        yield Check("hosted-zone", zone_id, "FAIL", f"{name} cannot hold {', '.join(outside)}")
    else:
        yield Check("hosted-zone", zone_id, "ok", f"{name} holds {', '.join(names)}")


KVS_READ_ACTIONS = ("cloudfront-keyvaluestore:GetKey", "cloudfront-keyvaluestore:ListKeys")
"""The KeyValueStore reads that return values (ListKeys returns every key with its value)."""


def _matches(pattern: str, value: str) -> bool:
    """IAM's wildcard match (`*` any run, `?` one character), case-insensitive like actions."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE) is not None


def reads_the_store(document: Any) -> bool:
    """True if an Allow statement of `document` grants a KeyValueStore read on any store: its
    Action (or everything outside its NotAction) covers GetKey or ListKeys, on a resource that
    can name a key-value store. Deny statements and conditions are not weighed: the list errs
    towards showing a principal, never towards hiding one."""
    return _grants(document, KVS_READ_ACTIONS, _could_name_a_store)


def reads_the_secret(document: Any, name: str) -> bool:
    """True if `document` grants secretsmanager:GetSecretValue on a resource that can name the
    signing-key secret (`name` plus the suffixes Pulumi and Secrets Manager add): it holds the
    same keys as the store. Weighed as reads_the_store is."""
    secret = f"secret:{name}-0000000-AbCdEf"
    return _grants(
        document,
        ("secretsmanager:GetSecretValue",),
        lambda r: _could_name(r, "secretsmanager", secret),
    )


FUNCTION_CODE_ACTIONS = ("cloudfront:UpdateFunction", "cloudfront:CreateFunction")


def runs_code_on_the_store(document: Any) -> bool:
    """True if `document` grants cloudfront:TestFunction and UpdateFunction or CreateFunction on
    a resource that can name a function: code of one's own, associated with the store, run by
    TestFunction against the store's values (CloudFront Developer Guide, "Test functions"),
    returns them. Both in one document: a principal holding them from two policies is missed
    (weighed as reads_the_store is otherwise)."""

    def a_function(resource: Any) -> bool:
        return _could_name(resource, "cloudfront", "function/anyname")

    return _grants(document, ("cloudfront:TestFunction",), a_function) and _grants(
        document, FUNCTION_CODE_ACTIONS, a_function
    )


def _grants(document: Any, actions: tuple[str, ...], names: Callable[[Any], bool]) -> bool:
    if isinstance(document, str):  # IAM sends documents URL-encoded; botocore usually decodes
        document = json.loads(unquote(document))
    for statement in _as_list(document.get("Statement")):
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement:
            excluded = _as_list(statement["NotAction"])
            granted = [a for a in actions if not any(_matches(p, a) for p in excluded)]
        else:
            allowed = _as_list(statement.get("Action"))
            granted = [a for a in actions if any(_matches(p, a) for p in allowed)]
        resources = _as_list(statement.get("Resource", "*"))
        if granted and ("NotResource" in statement or any(map(names, resources))):
            return True
    return False


def _could_name(resource: Any, service: str, relative: str) -> bool:
    """True if the Resource pattern can match an ARN of `service` whose resource part is
    `relative`, in any partition, region and account."""
    parts = str(resource).split(":", 5)
    if len(parts) != 6:
        return str(resource) == "*"
    return (
        _matches(parts[0], "arn") and _matches(parts[2], service) and _matches(parts[5], relative)
    )


def _could_name_a_store(resource: Any) -> bool:
    """True if the Resource pattern can match a KeyValueStore's ARN
    (`arn:<partition>:cloudfront::<account>:key-value-store/<id>`) in any partition and
    account: `*`, `arn:aws:cloudfront::123456789012:*`, `arn:*:cloudfront::*:key-value-store/*`,
    or one named store (it may be the room's: preflight does not know its id)."""
    one_store = str(resource).split(":", 5)[-1].startswith("key-value-store/")
    return _could_name(resource, "cloudfront", "key-value-store/anyid") or (
        one_store and _could_name(resource, "cloudfront", str(resource).split(":", 5)[-1])
    )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def kvs_readers(clients: Clients, settings: Settings, stack: str = "*") -> Iterator[Check]:
    """Every user, group and role whose attached or inline policies read the signing keys: a
    KeyValueStore (AWS's CloudFrontReadOnlyAccess does; so do the stack's own inlet and admin
    roles), the stack's signing-key secret (`floodgate-<stack>-signing-keys-*`), or run code of
    their own against the store (runs_code_on_the_store); a user through a group counts too.
    From one paginated GetAccountAuthorizationDetails."""
    if not settings.admission.enabled:
        return
    secret = f"floodgate-{stack}-signing-keys"

    def reads(document: Any) -> bool:
        return (
            reads_the_store(document)
            or reads_the_secret(document, secret)
            or runs_code_on_the_store(document)
        )

    readable: set[str] = set()  # managed policies (ARNs) that read the keys
    held: dict[str, list[str]] = {}  # principal -> managed policy ARNs and "inline <name>"
    groups: dict[str, list[str]] = {}  # user -> their groups
    pages = clients.iam.get_paginator("get_account_authorization_details").paginate(
        Filter=["User", "Role", "Group", "LocalManagedPolicy", "AWSManagedPolicy"]
    )
    for page in pages:
        for policy in page.get("Policies", []):
            versions = [v for v in policy.get("PolicyVersionList", []) if v["IsDefaultVersion"]]
            if policy.get("AttachmentCount") and any(reads(v["Document"]) for v in versions):
                readable.add(policy["Arn"])
        for kind, details, inline in (
            ("user", "UserDetailList", "UserPolicyList"),
            ("group", "GroupDetailList", "GroupPolicyList"),
            ("role", "RoleDetailList", "RolePolicyList"),
        ):
            for who in page.get(details, []):
                name = f"{kind}/{who[kind.capitalize() + 'Name']}"
                held[name] = [p["PolicyArn"] for p in who.get("AttachedManagedPolicies", [])]
                held[name] += [
                    f"inline {p['PolicyName']}"
                    for p in who.get(inline, [])
                    if reads(p["PolicyDocument"])
                ]
                groups[name] = [f"group/{g}" for g in who.get("GroupList", [])]
    why = {
        name: [
            g.rsplit("/", 1)[-1] if g in readable else g
            for g in grants
            if g in readable or g.startswith("inline ")
        ]
        for name, grants in held.items()
    }
    readers = []
    for name in sorted(held):
        through = [f"via {g}" for g in groups.get(name, []) if why.get(g)]
        if why[name] or through:
            readers.append(f"{name} ({', '.join(why[name] + through)})")
    detail = "; ".join(readers) if readers else "none but AWS account root"
    yield Check("kvs-readers", "signing keys", "ok", f"{len(readers)} can read the keys: {detail}")


def run_checks(
    clients: Clients,
    settings: Settings,
    largest_planned: int,
    last_event_end: datetime | None = None,
    stack: str = "*",
) -> list[Check]:
    """Every check; a call AWS refuses (access denied, ...) propagates as ClientError."""
    steps: list[Callable[[], Iterator[Check]]] = [
        lambda: lambda_concurrency(clients, settings),
        lambda: ec2_vcpus(clients, settings),
        lambda: ami(clients, settings, last_event_end),
        lambda: dynamodb_throughput(clients, settings),
        lambda: alb_reservation(clients, settings, largest_planned),
        lambda: certificates(clients, settings),
        lambda: hosted_zone(clients, settings),
        lambda: kvs_readers(clients, settings, stack),
    ]
    return [check for step in steps for check in step()]


def planned_needs(settings: Settings, stack: str, now: datetime) -> tuple[int, datetime | None]:
    """The standing reservation or the largest any planned event asks for (LCUs), and when the
    last planned event's window closes."""
    plans = plan_events(load_calendar(), settings, stack, now)
    largest = max(
        [settings.load_balancer.minimum_capacity_units, *(p.capacity_units for p in plans)]
    )
    return largest, max((p.restore_at for p in plans), default=None)


def table(checks: list[Check]) -> str:
    rows = [("check", "target", "verdict", "detail")] + [
        (c.check, c.target, c.verdict, c.detail) for c in checks
    ]
    return "\n".join(fitted(rows, free_text=True))


def main(argv: list[str] | None = None, clients: Clients | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    args = parser.parse_args(argv)
    try:
        settings = load_stack_settings(args.stack)
        largest, last_end = planned_needs(settings, args.stack, clock.now())
    except (SettingsError, CalendarError, PlanError, clock.ClockError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        checks = run_checks(
            clients or Clients.for_region(settings.region), settings, largest, last_end, args.stack
        )
    except NoCredentialsError:
        print(
            "error: no AWS credentials: log in (aws sso login) or set AWS_PROFILE", file=sys.stderr
        )
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"error: AWS refused a read: {exc}", file=sys.stderr)
        return 2
    ready = all(c.verdict == "ok" for c in checks)
    if args.json:
        print(
            json.dumps(
                {"stack": args.stack, "ready": ready, "checks": [asdict(c) for c in checks]},
                indent=2,
            )
        )
    else:
        print(f"Floodgate preflight: stack {args.stack} in {settings.region}")
        print(table(checks))
        print(f"\n{'READY' if ready else 'NOT READY'}")
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main())
