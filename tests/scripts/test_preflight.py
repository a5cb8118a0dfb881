"""Preflight: each check ready and not ready, against moto (EC2, ACM, Route 53) and botocore's
Stubber (Service Quotas, Lambda account settings, DynamoDB limits, which moto does not model);
the Stubber checks every request and response against the AWS API model."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from botocore.stub import Stubber
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from planning.settings import Settings
from scripts import preflight
from scripts.preflight import (
    EC2_STANDARD_VCPU_QUOTA,
    Check,
    Clients,
    covers,
    kvs_readers,
    main,
    planned_needs,
    reads_the_store,
    run_checks,
)
from tests.helpers import client, settings_with

LCU_QUOTA = {"ServiceCode": "elasticloadbalancing", "QuotaCode": "L-0000LCU0",
             "QuotaName": "Load Balancer Capacity Units reserved per Application Load Balancer",
             "Value": 1500.0}  # fmt: skip


def pem_certificate(*names: str) -> tuple[bytes, bytes]:
    """A self-signed certificate for `names` (ACM imports it as ISSUED)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class Account:
    """moto for what it models, Stubber for the rest; `stub(...)` queues the quota answers."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.clients = Clients(
            lambda_=client("lambda", url),
            quotas=client("service-quotas", url),
            dynamodb=client("dynamodb", url),
            ec2=client("ec2", url),
            acm=client("acm", url),
            acm_edge=client("acm", url, "us-east-1"),
            route53=client("route53", url),
            iam=client("iam", url),
        )
        self.stubs = [
            Stubber(c) for c in (self.clients.lambda_, self.clients.quotas, self.clients.dynamodb)
        ]

    def certificate(self, acm: Any, *names: str) -> str:
        cert, key = pem_certificate(*names)
        return acm.import_certificate(Certificate=cert, PrivateKey=key)["CertificateArn"]

    def stub(
        self,
        concurrency: int = 1000,
        vcpus: float = 512,
        table_units: int = 40_000,
        lcu_quota: dict | None = LCU_QUOTA,
        lcu: bool = True,
        unreserved: int | None = None,
        table_write_units: int | None = None,
    ) -> None:
        lambda_, quotas, dynamodb = self.stubs
        lambda_.add_response(
            "get_account_settings",
            {
                "AccountLimit": {
                    "ConcurrentExecutions": concurrency,
                    "UnreservedConcurrentExecutions": concurrency
                    if unreserved is None
                    else unreserved,
                }
            },
        )
        quotas.add_response(
            "get_service_quota",
            {
                "Quota": {
                    "ServiceCode": "ec2",
                    "QuotaCode": EC2_STANDARD_VCPU_QUOTA,
                    "QuotaName": "Running On-Demand Standard instances",
                    "Value": vcpus,
                }
            },
            {"ServiceCode": "ec2", "QuotaCode": EC2_STANDARD_VCPU_QUOTA},
        )
        dynamodb.add_response(
            "describe_limits",
            {
                "AccountMaxReadCapacityUnits": 80_000,
                "AccountMaxWriteCapacityUnits": 80_000,
                "TableMaxReadCapacityUnits": table_units,
                "TableMaxWriteCapacityUnits": table_units
                if table_write_units is None
                else table_write_units,
            },
        )
        if lcu:
            quotas.add_response(
                "list_service_quotas",
                {"Quotas": [lcu_quota] if lcu_quota else []},
                {"ServiceCode": "elasticloadbalancing"},
            )
        for stub in self.stubs:
            stub.activate()


@pytest.fixture
def account(aws: str) -> Account:
    return Account(aws)


def an_ami(account: Account, architecture: str) -> str:
    """One of the Amazon AMIs moto holds in the region, of `architecture`."""
    images = account.clients.ec2.describe_images(
        Filters=[{"Name": "architecture", "Values": [architecture]}]
    )["Images"]
    return next(i["ImageId"] for i in images if i["State"] == "available")


@pytest.fixture
def ready(account: Account, prod_config: dict) -> Settings:
    """Prod's settings pointing at certificates that exist, are ISSUED and cover the names,
    and at an x86_64 AMI of the region (m7i.large is x86_64)."""
    origin = account.certificate(
        account.clients.acm,
        "origin.portal.example.ca",
        "queue-origin.portal.example.ca",
        "inbox-origin.portal.example.ca",
    )
    edge = account.certificate(account.clients.acm_edge, "portal.example.ca", "*.example.ca")
    zone = account.clients.route53.create_hosted_zone(Name="portal.example.ca", CallerReference="r")
    settings = settings_with(
        prod_config,
        load_balancer__certificate_arn=origin,
        edge__certificate_arn=edge,
        fleet__ami_id=an_ami(account, "x86_64"),
    )
    # moto's zone ids do not look like Route 53's (Z...): set without validation.
    zone_id = zone["HostedZone"]["Id"].split("/")[-1]
    return settings.model_copy(
        update={
            "load_balancer": settings.load_balancer.model_copy(update={"hosted_zone_id": zone_id})
        }
    )


def verdicts(checks: list[Check]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for c in checks:
        out.setdefault(c.check, []).append(c.verdict)
    return out


def test_prod_is_ready_when_the_account_holds_it(account, ready) -> None:
    account.stub()
    checks = run_checks(account.clients, ready, largest_planned=1200)
    assert all(c.verdict == "ok" for c in checks), checks
    assert set(verdicts(checks)) == {
        "lambda-concurrency",
        "ec2-vcpus",
        "ami",
        "dynamodb-throughput",
        "alb-lcu-reservation",
        "certificate-origin",
        "certificate-edge",
        "hosted-zone",
        "kvs-readers",
    }
    vcpus = next(c for c in checks if c.check == "ec2-vcpus")
    assert "needs 240" in vcpus.detail, "120 x m7i.large (2 vCPUs, from EC2's own data)"


def test_a_default_new_account_is_not_ready(account, ready) -> None:
    """New accounts start with far less than 1,000 Lambda executions and few vCPUs."""
    account.stub(concurrency=50, vcpus=32, table_units=10_000)
    checks = run_checks(account.clients, ready, largest_planned=1200)
    assert verdicts(checks)["lambda-concurrency"] == ["FAIL"]
    assert verdicts(checks)["ec2-vcpus"] == ["FAIL"]
    assert verdicts(checks)["dynamodb-throughput"] == ["FAIL", "FAIL"]
    lam = next(c for c in checks if c.check == "lambda-concurrency")
    # join 142 + status 300 (prod sets it) + inlet 1 + admin 2 + the runner 1, and 100 unreserved
    assert lam.detail.startswith("only 50") and "needs 546" in lam.detail


def test_lcu_reservation_above_the_quota_fails(account, ready) -> None:
    account.stub()
    (check,) = [
        c
        for c in run_checks(account.clients, ready, largest_planned=2000)
        if c.check == "alb-lcu-reservation"
    ]
    assert (check.verdict, check.detail) == ("FAIL", check.detail)
    assert "needs 2,000" in check.detail


def test_lcu_quota_that_cannot_be_found_is_not_ready(account, ready) -> None:
    account.stub(lcu_quota=None)
    (check,) = [
        c
        for c in run_checks(account.clients, ready, largest_planned=100)
        if c.check == "alb-lcu-reservation"
    ]
    assert check.verdict == "unknown" and "check by hand" in check.detail


def test_certificate_that_misses_a_name_or_is_pending_fails(account, prod_config) -> None:
    origin = account.certificate(account.clients.acm, "other.example.ca")
    pending = account.clients.acm_edge.request_certificate(
        DomainName="portal.example.ca", ValidationMethod="DNS"
    )["CertificateArn"]
    settings = settings_with(
        prod_config, load_balancer__certificate_arn=origin, edge__certificate_arn=pending
    )
    account.stub()
    checks = {c.check: c for c in run_checks(account.clients, settings, largest_planned=100)}
    assert checks["certificate-origin"].verdict == "FAIL"
    assert "does not cover origin.portal.example.ca" in checks["certificate-origin"].detail
    assert checks["certificate-edge"].verdict == "FAIL"
    assert "not ISSUED" in checks["certificate-edge"].detail


def test_the_origin_certificate_must_cover_the_inbox_s_custom_domain(account, ready) -> None:
    """The inbox's API is reached by its own custom domain on the load balancer's certificate
    unless it has one of its own: one that does not cover the name would fail the update."""
    account.stub()
    narrow = account.certificate(
        account.clients.acm, "origin.portal.example.ca", "queue-origin.portal.example.ca"
    )
    lb = ready.load_balancer.model_copy(update={"certificate_arn": narrow})
    checks = run_checks(account.clients, ready.model_copy(update={"load_balancer": lb}), 100)
    (origin,) = [c for c in checks if c.check == "certificate-origin"]
    assert (origin.verdict, origin.detail) == (
        "FAIL",
        "does not cover inbox-origin.portal.example.ca",
    )


def test_hosted_zone_must_exist_be_public_and_hold_the_origin(account, ready) -> None:
    route53 = account.clients.route53
    public = route53.create_hosted_zone(Name="portal.example.ca", CallerReference="a")
    other = route53.create_hosted_zone(Name="elsewhere.ca", CallerReference="b")
    # "ple.ca" ends the origin's name as text but is no parent of it: DNS delegates by label.
    suffix = route53.create_hosted_zone(Name="ple.ca", CallerReference="c")
    cases = {
        public["HostedZone"]["Id"].split("/")[-1]: "ok",
        other["HostedZone"]["Id"].split("/")[-1]: "FAIL",
        suffix["HostedZone"]["Id"].split("/")[-1]: "FAIL",
        "Z0000000NOSUCHZONE": "FAIL",
    }
    for zone_id, expected in cases.items():
        settings = ready.model_copy(
            update={
                "load_balancer": ready.load_balancer.model_copy(update={"hosted_zone_id": zone_id})
            }
        )
        account.stub()
        (check,) = [
            c
            for c in run_checks(account.clients, settings, largest_planned=100)
            if c.check == "hosted-zone"
        ]
        assert check.verdict == expected, (zone_id, check)
        for stub in account.stubs:
            stub.deactivate()


def ami_check(account: Account, settings: Settings, last_event_end=None) -> Check:
    account.stub()
    checks = run_checks(account.clients, settings, 100, last_event_end)
    (check,) = [c for c in checks if c.check == "ami"]
    return check


def test_an_ami_missing_disabled_or_of_the_wrong_architecture_is_not_ready(account, ready) -> None:
    missing = ready.model_copy(
        update={"fleet": ready.fleet.model_copy(update={"ami_id": "ami-0123456789abcdef0"})}
    )
    assert ami_check(account, missing).detail == "no such AMI in ca-central-1"
    for stub in account.stubs:
        stub.deactivate()
    arm = ready.model_copy(
        update={"fleet": ready.fleet.model_copy(update={"ami_id": an_ami(account, "arm64")})}
    )
    check = ami_check(account, arm)
    assert check.verdict == "FAIL" and "is arm64; m7i.large need x86_64" in check.detail
    for stub in account.stubs:
        stub.deactivate()
    account.clients.ec2.disable_image(ImageId=ready.fleet.ami_id)
    assert "state disabled, not available" in ami_check(account, ready).detail


def test_an_ami_deprecated_before_the_last_planned_event_is_not_ready(account, ready) -> None:
    """moto has no deprecation: EC2's own answer, through the Stubber (checked against the API
    model), with the instance types' answer the vCPU check asks for first."""
    ec2 = Stubber(account.clients.ec2)
    ec2.add_response(
        "describe_instance_types",
        {"InstanceTypes": [{"InstanceType": "m7i.large", "VCpuInfo": {"DefaultVCpus": 2}}]},
    )
    image = {"ImageId": ready.fleet.ami_id, "State": "available", "Architecture": "x86_64",
             "DeprecationTime": "2028-10-15T00:00:00.000Z"}  # fmt: skip
    ec2.add_response("describe_images", {"Images": [image]},
                     {"ImageIds": [ready.fleet.ami_id], "IncludeDeprecated": True})  # fmt: skip
    with ec2:
        check = ami_check(account, ready, datetime(2028, 11, 8, 10, tzinfo=UTC))
    assert check.verdict == "FAIL"
    assert "deprecated from 2028-10-15T00:00:00.000Z (planned events run to 2028-11-08" in (
        check.detail
    )


def test_wildcards_cover_one_label_only() -> None:
    assert covers(["*.example.ca"], "portal.example.ca")
    assert not covers(["*.example.ca"], "a.portal.example.ca")
    assert not covers(["*.example.ca"], "example.ca")
    assert covers(["example.ca"], "example.ca")


def test_main_prints_json_and_exits_1_when_not_ready(account, capsys) -> None:
    """Prod's stack file holds placeholder certificate ARNs and hosted zone: not found, so not
    ready."""
    account.stub()
    assert main(["--stack", "prod", "--json"], account.clients) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ready"] is False
    failed = {c["check"] for c in report["checks"] if c["verdict"] != "ok"}
    placeholders = {"certificate-origin", "certificate-edge", "ami", "hosted-zone"}
    assert failed == placeholders, "placeholders, all four"


def test_refused_read_is_an_error_naming_it(account, capsys) -> None:
    lambda_ = account.stubs[0]
    lambda_.add_client_error("get_account_settings", "AccessDeniedException", "not allowed")
    lambda_.activate()
    assert main(["--stack", "prod"], account.clients) == 2
    assert "AccessDeniedException" in capsys.readouterr().err


def test_unknown_stack_is_an_error_before_any_call(capsys) -> None:
    assert main(["--stack", "nope"], clients=None) == 2
    assert "stack 'nope': no file" in capsys.readouterr().err


def test_vcpus_are_counted_at_the_largest_instance_type(account, ready) -> None:
    """The group may launch any of its types at max size: m7i.2xlarge has 8 vCPUs (EC2
    instance types), so 120 of them need 960, not the 240 of m7i.large."""
    mixed = ready.model_copy(
        update={
            "fleet": ready.fleet.model_copy(update={"instance_types": ["m7i.large", "m7i.2xlarge"]})
        }
    )
    account.stub(vcpus=512)
    (check,) = [c for c in run_checks(account.clients, mixed, 100) if c.check == "ec2-vcpus"]
    assert check.verdict == "FAIL" and "needs 960" in check.detail, check


def test_the_lcu_quota_is_checked_against_the_largest_planned_reservation(ready) -> None:
    """The 2027 levels plan (a jump) asks for more than prod's standing 100 LCUs: the quota
    must hold that."""
    largest, last_end = planned_needs(ready, "prod", datetime(2027, 10, 1, tzinfo=UTC))
    assert largest > ready.load_balancer.minimum_capacity_units == 100
    assert last_end is not None and last_end > datetime(2027, 11, 1, tzinfo=UTC)


# The shape of AWS's managed CloudFrontReadOnlyAccess (AWS Managed Policy Reference): Describe,
# Get and List on CloudFront and on cloudfront-keyvaluestore, on "*". Written out as a customer
# policy because moto's copy of the managed policies may predate the KeyValueStore actions.
CLOUDFRONT_READ_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "cloudfront:Describe*",
                "cloudfront:Get*",
                "cloudfront:List*",
                "cloudfront-keyvaluestore:Describe*",
                "cloudfront-keyvaluestore:Get*",
                "cloudfront-keyvaluestore:List*",
            ],
            "Resource": "*",
        }
    ],
}
TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def inline(iam: Any, kind: str, name: str, policy: str, *statements: dict) -> None:
    """Create the user, group or role `name` with one inline policy of `statements`."""
    if kind == "role":
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=TRUST)
    else:
        getattr(iam, f"create_{kind}")(**{f"{kind.capitalize()}Name": name})
    document = json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
    getattr(iam, f"put_{kind}_policy")(
        **{f"{kind.capitalize()}Name": name, "PolicyName": policy, "PolicyDocument": document}
    )


def test_who_can_read_the_signing_keys_is_listed(account, ready) -> None:
    """Issue 26: anyone who can read the store can mint tokens; preflight names them: a role
    with a CloudFrontReadOnlyAccess-like managed policy, a user with an inline
    `cloudfront-keyvaluestore:*`, a group with NotAction, a user who may update and test a
    function; not a role that may only describe, nor one that may only test."""
    iam = account.clients.iam
    readonly = iam.create_policy(
        PolicyName="CloudFrontReadOnlyAccess", PolicyDocument=json.dumps(CLOUDFRONT_READ_ONLY)
    )["Policy"]["Arn"]
    iam.create_role(RoleName="auditors", AssumeRolePolicyDocument=TRUST)
    iam.attach_role_policy(RoleName="auditors", PolicyArn=readonly)
    inline(iam, "user", "ops", "edge-admin", {
        "Effect": "Allow", "Action": "cloudfront-keyvaluestore:*",
        "Resource": "arn:aws:cloudfront::123456789012:key-value-store/abc"})  # fmt: skip
    inline(iam, "group", "everything-but-iam", "broad",
           {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})  # fmt: skip
    kvs = "cloudfront-keyvaluestore"
    inline(iam, "role", "describers", "describe",
           {"Effect": "Allow", "Action": f"{kvs}:DescribeKeyValueStore", "Resource": "*"},
           {"Effect": "Deny", "Action": f"{kvs}:GetKey", "Resource": "*"})  # fmt: skip
    inline(iam, "user", "function-dev", "edit-and-test", {
        "Effect": "Allow", "Action": ["cloudfront:UpdateFunction", "cloudfront:TestFunction"],
        "Resource": "arn:aws:cloudfront::123456789012:function/*"})  # fmt: skip
    inline(
        iam,
        "role",
        "testers",
        "test-only",
        {"Effect": "Allow", "Action": "cloudfront:TestFunction", "Resource": "*"},
    )
    [check] = kvs_readers(account.clients, ready)
    assert check.verdict == "ok", "listed, not failed: a stated trade-off"
    assert check.detail.startswith("4 can read the keys: "), check.detail
    for who in (
        "role/auditors (CloudFrontReadOnlyAccess)",
        "user/ops (inline edge-admin)",
        "group/everything-but-iam (inline broad)",
        "user/function-dev (inline edit-and-test)",  # its own code, run on the store's values
    ):
        assert who in check.detail
    assert "describers" not in check.detail
    assert "testers" not in check.detail, "TestFunction alone runs only the gate's own code"


def test_nobody_reads_a_store_that_is_not_there(account, ready) -> None:
    no_room = ready.model_copy(
        update={"admission": ready.admission.model_copy(update={"enabled": False})}
    )
    assert list(kvs_readers(account.clients, no_room)) == []


@pytest.mark.parametrize(
    ("resource", "reads"),
    [
        ("*", True),
        ("arn:aws:cloudfront::123456789012:*", True),  # the review's false negative
        ("arn:*:cloudfront::*:key-value-store/*", True),
        ("arn:aws-cn:cloudfront::123456789012:key-value-store/abc", True),
        ("arn:aws:cloudfront::123456789012:distribution/*", False),
        ("arn:aws:s3:::bucket/*", False),
    ],
)
def test_a_read_on_any_resource_that_can_name_a_store_counts(resource, reads) -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "cloudfront-keyvaluestore:*", "Resource": resource}
        ],
    }
    assert reads_the_store(document) is reads


# --- issue 25: the edges of the IAM matching, the quotas and the verdict ------------------------

KVS_ARN = "arn:aws:cloudfront::123456789012:key-value-store/abc"


def allow(action: Any, resource: Any = "*", key: str = "Action") -> dict[str, Any]:
    return {"Effect": "Allow", key: action, "Resource": resource}


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_an_allow_after_a_deny_still_reads_the_store() -> None:
    """Catches a `break` at the first Deny statement: the Allow after it is never weighed."""
    document = policy(
        {"Effect": "Deny", "Action": "cloudfront:DeleteDistribution", "Resource": "*"},
        allow("cloudfront-keyvaluestore:ListKeys"),
    )
    assert reads_the_store(document)


def test_an_action_matches_whole_not_by_its_prefix() -> None:
    """Catches a prefix match (re.match): `...:Get` is no action IAM knows, and no read."""
    assert not reads_the_store(policy(allow("cloudfront-keyvaluestore:Get")))
    assert not reads_the_store(policy(allow("cloudfront-keyvaluestore:List")))


def test_action_names_match_in_any_case() -> None:
    """Catches a case-sensitive match. "The prefix and the action name are case insensitive"
    (IAM User Guide, "IAM JSON policy elements: Action",
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_action.html)."""
    assert reads_the_store(policy(allow("CloudFront-KeyValueStore:getkey")))


def test_a_question_mark_stands_for_exactly_one_character() -> None:
    """Catches `?` read as `*` or as a literal: the single-character wildcard of the same page
    ("IAM JSON policy elements: Action"). `Get?` is four letters; GetKey is six."""
    assert reads_the_store(policy(allow("cloudfront-keyvaluestore:?etKey")))
    assert reads_the_store(policy(allow("cloudfront-keyvaluestore:List????")))
    assert not reads_the_store(policy(allow("cloudfront-keyvaluestore:Get?")))


def test_a_store_named_anywhere_in_a_resource_list_is_read() -> None:
    """Catches a check of the first Resource only: the store is the second of two."""
    logs = "arn:aws:s3:::logs/*"
    assert reads_the_store(policy(allow("cloudfront-keyvaluestore:GetKey", [logs, KVS_ARN])))
    assert not reads_the_store(policy(allow("cloudfront-keyvaluestore:GetKey", [logs])))


def test_notaction_that_leaves_one_read_out_still_grants_the_other() -> None:
    """Catches NotAction taken as all-or-nothing: excluding GetKey still grants ListKeys, which
    returns every key with its value; excluding the whole service grants neither."""
    assert reads_the_store(policy(allow("cloudfront-keyvaluestore:GetKey", key="NotAction")))
    assert not reads_the_store(policy(allow("cloudfront-keyvaluestore:*", key="NotAction")))


def test_a_url_encoded_document_is_read_as_iam_sends_it() -> None:
    """Catches a document parsed without URL-decoding: GetAccountAuthorizationDetails returns
    policy documents URL-encoded (RFC 3986) when botocore does not decode them."""
    encoded = quote(json.dumps(policy(allow("cloudfront-keyvaluestore:GetKey", KVS_ARN))))
    assert encoded.startswith("%7B")
    assert reads_the_store(encoded)


def test_aws_managed_policies_are_read_and_only_default_versions_count(account, ready) -> None:
    """Catches AWSManagedPolicy dropped from the Filter (AWS's own policies, such as
    AdministratorAccess, then never read, hiding the role that holds one), and an old
    non-default version counted as the policy. The Filter's values are those of the IAM API
    Reference, "GetAccountAuthorizationDetails" (Valid Values: User | Role | Group |
    LocalManagedPolicy | AWSManagedPolicy,
    https://docs.aws.amazon.com/IAM/latest/APIReference/API_GetAccountAuthorizationDetails.html);
    its documents come URL-encoded, as that page says. moto loads no AWS managed policies."""
    admin = "arn:aws:iam::aws:policy/AdministratorAccess"
    narrowed = "arn:aws:iam::123456789012:policy/narrowed"
    everything = quote(json.dumps(policy({"Effect": "Allow", "Action": "*", "Resource": "*"})))
    describe = quote(json.dumps(policy(allow("cloudfront:Describe*"))))

    def version(document: str, default: bool, number: int) -> dict[str, Any]:
        return {"Document": document, "IsDefaultVersion": default, "VersionId": f"v{number}"}

    def role(name: str, arn: str) -> dict[str, Any]:
        attached = [{"PolicyArn": arn, "PolicyName": arn.rsplit("/", 1)[-1]}]
        return {"RoleName": name, "AttachedManagedPolicies": attached, "RolePolicyList": []}

    iam = Stubber(account.clients.iam)
    iam.add_response(
        "get_account_authorization_details",
        {
            "Policies": [
                {"Arn": admin, "PolicyName": "AdministratorAccess", "AttachmentCount": 1,
                 "PolicyVersionList": [version(everything, True, 1)]},
                {"Arn": narrowed, "PolicyName": "narrowed", "AttachmentCount": 1,
                 "PolicyVersionList": [version(everything, False, 1), version(describe, True, 2)]},
            ],
            "RoleDetailList": [role("break-glass", admin), role("viewers", narrowed)],
            "IsTruncated": False,
        },
        {"Filter": ["User", "Role", "Group", "LocalManagedPolicy", "AWSManagedPolicy"]},
    )  # fmt: skip
    with iam:
        [check] = kvs_readers(account.clients, ready)
    assert check.detail == "1 can read the keys: role/break-glass (AdministratorAccess)", check


def test_a_check_that_cannot_be_settled_is_not_ready(monkeypatch, capsys) -> None:
    """Catches readiness counted as "nothing FAILed": an `unknown` (a quota preflight could
    not find) exits 1 and says NOT READY; the JSON carries each check's four fields."""
    checks = [
        Check("lambda-concurrency", "ca-central-1", "ok", "has 1,000"),
        Check("alb-lcu-reservation", "ca-central-1", "unknown", "check by hand"),
    ]
    monkeypatch.setattr(preflight, "run_checks", lambda *_args: checks)
    assert main(["--stack", "prod", "--json"], clients=object()) == 1  # type: ignore[arg-type]
    report = json.loads(capsys.readouterr().out)
    assert report == {
        "stack": "prod",
        "ready": False,
        "checks": [
            {"check": "lambda-concurrency", "target": "ca-central-1", "verdict": "ok",
             "detail": "has 1,000"},
            {"check": "alb-lcu-reservation", "target": "ca-central-1", "verdict": "unknown",
             "detail": "check by hand"},
        ],
    }  # fmt: skip
    assert main(["--stack", "prod"], clients=object()) == 1  # type: ignore[arg-type]
    assert capsys.readouterr().out.rstrip().endswith("NOT READY")


def test_table_writes_are_checked_against_the_write_quota(account, ready) -> None:
    """Catches the read quota used for writes: reads may go to 40,000 units per table while
    writes are held at 1 (DescribeLimits' TableMaxWriteCapacityUnits)."""
    account.stub(table_units=40_000, table_write_units=1)
    checks = [
        c for c in run_checks(account.clients, ready, 100) if c.check == "dynamodb-throughput"
    ]
    assert [(c.target, c.verdict) for c in checks] == [
        ("table writes", "FAIL"),
        ("table reads", "ok"),
    ]


def test_lambda_concurrency_is_the_account_limit_not_what_is_left_unreserved(account, ready):
    """Catches UnreservedConcurrentExecutions read as the limit: once the stack is up its own
    reservations (335) come out of the unreserved pool, and a 1,000 account that holds the
    stack must still be ready (GetAccountSettings: AccountLimit.ConcurrentExecutions is the
    account's maximum)."""
    account.stub(concurrency=1000, unreserved=1000 - 335)
    (check,) = [
        c for c in run_checks(account.clients, ready, 100) if c.check == "lambda-concurrency"
    ]
    assert check.verdict == "ok" and check.detail.startswith("has 1,000"), check


def test_a_private_hosted_zone_is_not_ready(account, ready) -> None:
    """Catches the private-zone branch dropped: CloudFront resolves the origin in public DNS."""
    vpc = account.clients.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    private = account.clients.route53.create_hosted_zone(
        Name="portal.example.ca",
        CallerReference="private",
        HostedZoneConfig={"PrivateZone": True},
        VPC={"VPCRegion": "ca-central-1", "VPCId": vpc},
    )["HostedZone"]["Id"].split("/")[-1]
    settings = ready.model_copy(
        update={"load_balancer": ready.load_balancer.model_copy(update={"hosted_zone_id": private})}
    )
    account.stub()
    (check,) = [c for c in run_checks(account.clients, settings, 100) if c.check == "hosted-zone"]
    assert check.verdict == "FAIL" and "is private" in check.detail, check


def test_the_lcu_quota_is_found_on_a_later_page(account, ready) -> None:
    """Catches a search that gives up after the first page of ListServiceQuotas (paginated
    with NextToken): the reservation quota is on the second."""
    account.stub(lcu=False)
    quotas = account.stubs[1]
    other = {"ServiceCode": "elasticloadbalancing", "QuotaCode": "L-53DA6B97",
             "QuotaName": "Application Load Balancers per Region", "Value": 50.0}  # fmt: skip
    quotas.add_response(
        "list_service_quotas",
        {"Quotas": [other], "NextToken": "page-2"},
        {"ServiceCode": "elasticloadbalancing"},
    )
    quotas.add_response(
        "list_service_quotas",
        {"Quotas": [LCU_QUOTA]},
        {"ServiceCode": "elasticloadbalancing", "NextToken": "page-2"},
    )
    (check,) = [
        c for c in run_checks(account.clients, ready, 1200) if c.check == "alb-lcu-reservation"
    ]
    assert check.verdict == "ok" and "has 1,500 LCUs" in check.detail, check


def test_an_ami_deprecated_the_second_the_last_event_ends_is_not_ready(account, ready) -> None:
    """Catches `<` for `<=`: an AMI is deprecated from its DeprecationTime on, so one that
    turns deprecated at the very second the last window closes is not ready."""
    ec2 = Stubber(account.clients.ec2)
    ec2.add_response(
        "describe_instance_types",
        {"InstanceTypes": [{"InstanceType": "m7i.large", "VCpuInfo": {"DefaultVCpus": 2}}]},
    )
    image = {"ImageId": ready.fleet.ami_id, "State": "available", "Architecture": "x86_64",
             "DeprecationTime": "2028-11-08T10:00:00.000Z"}  # fmt: skip
    ec2.add_response("describe_images", {"Images": [image]},
                     {"ImageIds": [ready.fleet.ami_id], "IncludeDeprecated": True})  # fmt: skip
    with ec2:
        check = ami_check(account, ready, datetime(2028, 11, 8, 10, tzinfo=UTC))
    assert check.verdict == "FAIL" and "deprecated from 2028-11-08T10:00:00.000Z" in check.detail


def test_readers_of_the_signing_key_secret_and_group_members_are_listed(account, ready) -> None:
    """Review of issue 26: the secret holds the same keys as the store, and a user reads what
    their group reads."""
    iam = account.clients.iam
    secret_read = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": "arn:aws:secretsmanager:*:123456789012:secret:floodgate-prod-*"}]}  # fmt: skip
    other_secret = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
         "Resource": "arn:aws:secretsmanager:ca-central-1:123456789012:secret:db-*"}]}  # fmt: skip
    iam.create_role(RoleName="secret-readers", AssumeRolePolicyDocument=TRUST)
    iam.put_role_policy(
        RoleName="secret-readers", PolicyName="keys", PolicyDocument=json.dumps(secret_read)
    )
    iam.create_role(RoleName="db", AssumeRolePolicyDocument=TRUST)
    iam.put_role_policy(RoleName="db", PolicyName="db", PolicyDocument=json.dumps(other_secret))
    iam.create_group(GroupName="edge-team")
    iam.put_group_policy(
        GroupName="edge-team", PolicyName="edge", PolicyDocument=json.dumps(CLOUDFRONT_READ_ONLY)
    )
    iam.create_user(UserName="alice")
    iam.add_user_to_group(GroupName="edge-team", UserName="alice")
    [check] = kvs_readers(account.clients, ready, "prod")
    assert "role/secret-readers (inline keys)" in check.detail
    assert "user/alice (via group/edge-team)" in check.detail
    assert "group/edge-team (inline edge)" in check.detail
    assert "role/db" not in check.detail
    assert check.detail.startswith("3 can read the keys: ")
