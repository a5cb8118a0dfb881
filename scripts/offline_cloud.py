"""Run the Floodgate program with no engine, no credentials and no network.

Pulumi's own mock monitor (`pulumi.runtime.set_mocks`) stands in for the engine; this module
records every registration exactly as the engine would receive it, and answers the provider
calls the program makes. Every mocked invoke result lives in `INVOKE_RESULTS` below, with where
its shape and values come from; nothing else in the project invents cloud data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import runpy
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks

from planning.settings import PROJECT, STACKS_DIR

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "__main__.py"
SECRET = "[secret]"
"""A secret value whose digest is not shown (a plan diff's side of a changed secret)."""
SALT_ENV = "FLOODGATE_PLAN_SALT"
"""The key of each secret's digest in a plan; unset, a fixed one. Offline, every secret is a
mock's value (a RandomPassword's result) or a stack file's ciphertext, so a digest reveals
nothing; a team whose plans hold real values sets it from a CI secret, so the digests in a PR
comment cannot be checked against guesses (the same key on both sides of a diff)."""
_DEFAULT_SALT = "floodgate-offline-plan"
_MARK = re.compile(r"\[secret [0-9a-f]{12}\]")
_SHORTEST_SECRET = 8
"""A shorter secret string is not looked for inside a secret structure's other strings (it
would mask ordinary words); the structure is then masked whole."""

INVOKE_RESULTS: dict[str, dict[str, Any]] = {
    # EC2 DescribeManagedPrefixLists for the CloudFront origin-facing list. AWS publishes one
    # list per region under this name; pl-38a64351 is ca-central-1's (ids differ per region).
    "aws:ec2/getManagedPrefixList:getManagedPrefixList": {
        "id": "pl-38a64351",
        "name": "com.amazonaws.global.cloudfront.origin-facing",
        "addressFamily": "IPv4",
        "maxEntries": 55,
        "ownerId": "AWS",
        "arn": "arn:aws:ec2:ca-central-1:aws:prefix-list/pl-38a64351",
        "version": 42,
        "entries": [
            {"cidr": "13.32.0.0/15", "description": ""},
            {"cidr": "52.46.0.0/18", "description": ""},
        ],
        "filters": [],
        "tags": {},
    },
    # STS GetCallerIdentity: the account the credentials belong to (key policies name it).
    "aws:index/getCallerIdentity:getCallerIdentity": {
        "id": "123456789012",
        "accountId": "123456789012",
        "arn": "arn:aws:iam::123456789012:user/offline",
        "userId": "AIDAOFFLINEOFFLINE0001",
    },
}

ACCOUNT = "123456789012"


def _suffix(*parts: str, length: int = 8) -> str:
    """Stable pseudo-random suffix so ids and names are identical from run to run."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _computed(
    token: str, name: str, inputs: Mapping[str, Any], region: str = "ca-central-1"
) -> tuple[str, dict[str, Any]]:
    """Provider-computed outputs for the resource types Floodgate reads back, as AWS shapes
    them in `region` (the resource's provider's)."""
    h = _suffix(token, name)
    if "cloudfront" in token or "wafv2" in token:
        region = "us-east-1"
    arn = f"arn:aws:{token.split(':')[1].split('/', maxsplit=1)[0]}:{region}:{ACCOUNT}:{name}"
    out: dict[str, Any] = {"arn": arn}
    match token:
        case "aws:s3/bucket:Bucket":
            bucket = f"{name}-{h}"
            out |= {
                "bucket": bucket,
                "arn": f"arn:aws:s3:::{bucket}",
                "bucketDomainName": f"{bucket}.s3.amazonaws.com",
                "bucketRegionalDomainName": f"{bucket}.s3.ca-central-1.amazonaws.com",
            }
        case "aws:lb/loadBalancer:LoadBalancer":
            suffix = f"app/{name[:20]}/{_suffix(name, length=16)}"
            out |= {
                "arn": f"arn:aws:elasticloadbalancing:ca-central-1:{ACCOUNT}:loadbalancer/{suffix}",
                "arnSuffix": suffix,
                "dnsName": f"{name[:20]}-{h}.ca-central-1.elb.amazonaws.com",
                "zoneId": "ZQSVJUPU6J1EY",
            }
        case "aws:lb/targetGroup:TargetGroup":
            suffix = f"targetgroup/{name[:20]}/{_suffix(name, length=16)}"
            out |= {
                "arn": f"arn:aws:elasticloadbalancing:ca-central-1:{ACCOUNT}:{suffix}",
                "arnSuffix": suffix,
            }
        case "aws:ec2/launchTemplate:LaunchTemplate":
            out |= {"latestVersion": 1, "defaultVersion": 1}
        case "aws:autoscaling/group:Group":
            out |= {"name": inputs.get("name") or f"{name}-{h}"}
        case "aws:cloudfront/distribution:Distribution":
            dist_id = "E" + _suffix(name, length=13).upper()
            return dist_id, {
                "arn": f"arn:aws:cloudfront::{ACCOUNT}:distribution/{dist_id}",
                "domainName": f"d{h}.cloudfront.net",
                "hostedZoneId": "Z2FDTNDATAQYW2",
            }
        case "aws:iam/role:Role":
            out |= {
                "name": inputs.get("name") or f"{name}-{h}",
                "arn": f"arn:aws:iam::{ACCOUNT}:role/{name}-{h}",
            }
        case "aws:apigatewayv2/api:Api":
            api_id = _suffix(name, length=10)
            return api_id, {
                "apiEndpoint": f"https://{api_id}.execute-api.ca-central-1.amazonaws.com",
                "executionArn": f"arn:aws:execute-api:ca-central-1:{ACCOUNT}:{api_id}",
                "arn": f"arn:aws:apigateway:ca-central-1::/apis/{api_id}",
            }
        case "aws:lambda/function:Function":
            fn_arn = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{inputs.get('name', name)}"
            version = "1" if inputs.get("publish") else "$LATEST"
            out |= {
                "arn": fn_arn,
                "name": inputs.get("name") or f"{name}-{h}",
                "version": version,
                "qualifiedArn": f"{fn_arn}:{version}",
                "invokeArn": f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/"
                f"{fn_arn}/invocations",
            }
        case "aws:cloudfront/function:Function":
            out |= {"arn": f"arn:aws:cloudfront::{ACCOUNT}:function/{inputs.get('name', name)}"}
        case "aws:kms/key:Key":
            key_id = str(uuid.UUID(_suffix(name, length=32)))
            return key_id, {"arn": f"arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}", "keyId": key_id}
        case "aws:lambda/layerVersion:LayerVersion":
            out |= {"arn": f"arn:aws:lambda:{region}:{ACCOUNT}:layer:{name}:1"}
        case "aws:cloudfront/keyValueStore:KeyValueStore":
            out |= {"arn": f"arn:aws:cloudfront::{ACCOUNT}:key-value-store/{h}"}
        case "aws:sqs/queue:Queue":
            queue = inputs.get("name") or f"{name}-{h}"
            out |= {
                "name": queue,
                "arn": f"arn:aws:sqs:{region}:{ACCOUNT}:{queue}",
                "url": f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/{queue}",
            }
        case "aws:apigatewayv2/domainName:DomainName":
            config = dict(inputs.get("domainNameConfiguration") or {})
            out |= {
                "domainNameConfiguration": {
                    **config,
                    "targetDomainName": f"d-{h[:10]}.execute-api.{region}.amazonaws.com",
                    "hostedZoneId": "Z19DQILCV0OWEC",  # API Gateway's, ca-central-1
                }
            }
        case "aws:scheduler/schedule:Schedule":
            schedule = inputs.get("name") or f"{name}-{h}"
            out |= {
                "name": schedule,
                "arn": f"arn:aws:scheduler:{region}:{ACCOUNT}:schedule/default/{schedule}",
            }
        case "aws:dynamodb/table:Table" | "aws:cloudwatch/metricAlarm:MetricAlarm":
            out |= {"name": inputs.get("name") or f"{name}-{h}"}
        case "random:index/randomId:RandomId":
            out = {"hex": rpc.wrap_rpc_secret(_suffix(name, length=64))}
        case "random:index/randomPassword:RandomPassword":
            # The real provider returns `result` as a secret output; so must the mock, or a
            # leak of the value into a plain input would go unnoticed offline.
            out = {"result": rpc.wrap_rpc_secret("offline-" + _suffix(name, length=40))}
    return f"{name}-{h}", out


@dataclass(frozen=True)
class Registration:
    """One resource as the engine receives it: inputs keep their camelCase wire names."""

    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any]
    id: str = ""
    provider: str = ""
    """Provider reference `<urn>::<id>`; empty for the default provider."""
    ignore_changes: tuple[str, ...] = ()
    protect: bool = False
    dependencies: tuple[str, ...] = ()
    """URNs this resource depends on (explicit `depends_on` and the Outputs it reads)."""
    outputs: dict[str, Any] = field(default_factory=dict)
    """Inputs plus what the provider computes (mocked): what the engine shows stack policies."""
    aliases: tuple[str, ...] = ()
    """URNs the resource had before (its `aliases` option): the engine keeps it, not replaces."""
    retain_on_delete: bool = False
    """Dropped from the program, it leaves state but stays in the cloud (`retain_on_delete`)."""
    create_timeout_s: float = 0
    """The `custom_timeouts` create duration in seconds; 0: the provider's default."""

    def revealed(self) -> dict[str, Any]:
        """Inputs with secrets unwrapped, for tests that check what a secret carries."""
        return reveal(self.inputs)

    def to_json(self, secrets: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The plan's record: inputs with secrets as digests (`secret_mark`); inside a property
        made secret as a whole, only the `secrets` strings it holds are masked."""
        return {
            "urn": self.urn,
            "type": self.type,
            "name": self.name,
            "parent": self.parent,
            "aliases": list(self.aliases),
            "inputs": _plain(self.inputs, secrets),
        }


class OfflineCloud(Mocks):
    """Pulumi mocks: provider-computed outputs for resources, INVOKE_RESULTS for calls."""

    def __init__(self) -> None:
        self.provider_regions: dict[str, str] = {}
        """Explicit aws providers by name -> their region (resources they manage live there)."""

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if args.typ == "pulumi:providers:aws" and args.inputs.get("region"):
            self.provider_regions[args.name] = args.inputs["region"]
        provider = (args.provider or "").split("::")
        region = self.provider_regions.get(provider[-2] if len(provider) > 2 else "")
        resource_id, outputs = _computed(args.typ, args.name, args.inputs, region or "ca-central-1")
        return resource_id, {**args.inputs, **outputs}

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        try:
            return dict(INVOKE_RESULTS[args.token]), []
        except KeyError:
            raise NotImplementedError(
                f"no offline result for invoke {args.token}; add one to INVOKE_RESULTS"
            ) from None


class _RecordingMonitor(MockMonitor):
    def __init__(self, mocks: Mocks, registrations: list[Registration]) -> None:
        super().__init__(mocks)
        self.registrations = registrations

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """URNs as the engine makes them: the parent's whole qualified type, minus the stack
        (Pulumi's mock keeps only the parent's last type), so that offline URNs match those of
        a real `pulumi stack export`."""
        qualified = _urn_qualified_type(parent) if parent else ""
        if qualified and qualified != "pulumi:pulumi:Stack":
            type_ = f"{qualified}${type_}"
        return f"urn:pulumi:{pulumi.get_stack()}::{pulumi.get_project()}::{type_}::{name}"

    def RegisterResource(self, request):  # noqa: N802 - gRPC method name
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            parent = request.parent or None
            if parent is not None and _urn_qualified_type(parent) == "pulumi:pulumi:Stack":
                parent = None  # top-level resources: the stack itself is not in the plan
            self.registrations.append(
                Registration(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    parent=parent,
                    custom=bool(request.custom),
                    inputs=rpc.deserialize_properties(request.object),
                    id=response.id,
                    provider=request.provider,
                    ignore_changes=tuple(request.ignoreChanges),
                    protect=bool(request.protect),
                    dependencies=tuple(request.dependencies),
                    outputs=rpc.deserialize_properties(response.object),
                    aliases=self._alias_urns(request),
                    retain_on_delete=bool(request.retainOnDelete),
                    create_timeout_s=duration_s(request.customTimeouts.create),
                )
            )
        return response

    def _alias_urns(self, request: Any) -> tuple[str, ...]:
        """The request's aliases as URNs. The SDK sends specs (the mock monitor supports
        them): an unset name, type or parent means the resource's own; `noParent` means it
        had none. The engine also combines a parent's aliases with each child's name and type
        (https://www.pulumi.com/docs/iac/concepts/resources/options/aliases/); that is not
        expanded here, so a renamed component's children would show as moved offline."""
        urns: list[str] = []
        for alias in request.aliases:
            if alias.urn:
                urns.append(alias.urn)
                continue
            spec = alias.spec
            parent = "" if spec.noParent else spec.parentUrn or request.parent
            urn = self.make_urn(parent, spec.type or request.type, spec.name or request.name)
            _, _, qualified = urn.split("::", 2)
            stack, project = spec.stack or pulumi.get_stack(), spec.project or pulumi.get_project()
            urns.append(f"urn:pulumi:{stack}::{project}::{qualified}")
        return tuple(urns)


@dataclass
class OfflineRun:
    """What one offline evaluation registered, in registration order."""

    stack: str
    registrations: list[Registration] = field(default_factory=list)

    def of_type(self, token: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == token]

    def one(self, token: str, named: str = "") -> Registration:
        """The one `token` resource (whose name holds `named`, when given)."""
        found = [r for r in self.of_type(token) if named in r.name]
        if len(found) != 1:
            raise AssertionError(f"expected one {token} named *{named}*, found {len(found)}")
        return found[0]

    def children(self, urn: str | None) -> list[Registration]:
        return [r for r in self.registrations if r.parent == urn]

    def secret_strings(self) -> frozenset[str]:
        """Every secret string the run saw, in any resource's inputs or mocked outputs (a
        RandomPassword's result, a secret config value): what a secret structure is masked by."""
        found: set[str] = set()
        for r in self.registrations:
            _collect_secrets(r.inputs, found)
            _collect_secrets(r.outputs, found)
        return frozenset(found)

    def plan_document(self) -> dict[str, Any]:
        secrets = self.secret_strings()
        return {
            "stack": self.stack,
            "project": PROJECT,
            "resources": [
                r.to_json(secrets) for r in sorted(self.registrations, key=lambda r: r.urn)
            ],
        }

    def plan_json(self) -> str:
        return json.dumps(self.plan_document(), indent=2, sort_keys=True) + "\n"


def stack_config(stack: str, stacks_dir: Path = STACKS_DIR) -> dict[str, Any]:
    """The `config:` mapping of a stack file, as `pulumi config` would hold it."""
    path = stacks_dir / f"Pulumi.{stack}.yaml"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("config") or {}


def run_offline(
    stack: str,
    config: Mapping[str, Any],
    program: Callable[[], object] | None = None,
    into: OfflineRun | None = None,
) -> OfflineRun:
    """Evaluate `program` (default: `__main__.py`) under mocks with `config` set.

    Config values that are mappings or lists are JSON-encoded, as the Pulumi CLI passes them.
    Exceptions from the program (e.g. invalid settings) propagate unchanged; pass `into` to
    keep what was registered before one was raised.
    """
    run = into if into is not None else OfflineRun(stack=stack)
    # Offline nothing is uploaded, so build artefacts (the awscrt layer) need not exist.
    os.environ["FLOODGATE_OFFLINE"] = "1"
    mocks = OfflineCloud()
    pulumi.runtime.set_mocks(
        mocks,
        project=PROJECT,
        stack=stack,
        preview=True,
        monitor=_RecordingMonitor(mocks, run.registrations),
    )
    pulumi.runtime.set_all_config(
        {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in config.items()
        }
    )

    @pulumi.runtime.test
    def evaluate() -> None:
        if program is None:
            runpy.run_path(str(PROGRAM), run_name="__main__")
        else:
            program()

    evaluate()
    return run


def secret_mark(value: Any) -> str:
    """`[secret <12 hex>]`: the first 48 bits of the value's HMAC-SHA256 under the plan's salt
    (SALT_ENV). A change to the secret changes its mark; the value cannot be read from it."""
    salt = os.environ.get(SALT_ENV) or _DEFAULT_SALT
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    digest = hmac.new(salt.encode(), text.encode(), hashlib.sha256).hexdigest()
    return f"[secret {digest[:12]}]"


def is_secret(value: Any) -> bool:
    """`value` is a masked secret: SECRET or a `secret_mark`."""
    return isinstance(value, str) and (value == SECRET or _MARK.fullmatch(value) is not None)


def _collect_secrets(value: Any, into: set[str]) -> None:
    """The strings held secret at any depth of `value` (a secret scalar, not a structure)."""
    if rpc.is_rpc_secret(value):
        inner = rpc.unwrap_rpc_secret(value)
        if isinstance(inner, str):
            into.add(inner)
        _collect_secrets(inner, into)
    elif isinstance(value, dict):
        for v in value.values():
            _collect_secrets(v, into)
    elif isinstance(value, list):
        for v in value:
            _collect_secrets(v, into)


def _masked_inside(value: Any, secrets: list[str]) -> tuple[Any, bool]:
    """`value` (revealed) with each of `secrets` inside its strings replaced by its mark, and
    whether any was found."""
    if isinstance(value, str):
        found = False
        for secret in secrets:
            if secret in value:
                value, found = value.replace(secret, secret_mark(secret)), True
        return value, found
    if isinstance(value, dict):
        pairs = {k: _masked_inside(v, secrets) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(f for _, f in pairs.values())
    if isinstance(value, list):
        items = [_masked_inside(v, secrets) for v in value]
        return [v for v, _ in items], any(f for _, f in items)
    return value, False


def _plain(value: Any, secrets: frozenset[str] = frozenset()) -> Any:
    """Inputs as JSON: secrets as their marks, file assets as repo-relative path and content
    hash (build archives, absent offline, by path only), keys sorted later. A property secret
    as a whole (Pulumi marks a whole list secret when one element holds a secret, as the
    distribution's `origins` with the origin-verify header) keeps its structure and shows all
    but the secret strings in it; one in which none is found is masked whole."""
    if rpc.is_rpc_secret(value):
        inner = reveal(value)
        if not isinstance(inner, dict | list):
            return secret_mark(inner)
        longest = sorted((s for s in secrets if len(s) >= _SHORTEST_SECRET), key=len, reverse=True)
        masked, found = _masked_inside(inner, longest)
        return _plain(masked) if found else secret_mark(inner)
    if isinstance(value, dict):
        return {k: _plain(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, secrets) for v in value]
    if isinstance(value, pulumi.FileAsset):
        # The content hash is what makes a code change show in a plan diff, as it does in
        # `pulumi preview`; the path alone would not change.
        path = Path(str(value.path)).resolve()
        return {
            "asset": path.relative_to(ROOT).as_posix(),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
    if isinstance(value, pulumi.FileArchive):
        return {"archive": Path(str(value.path)).resolve().relative_to(ROOT).as_posix()}
    if isinstance(value, pulumi.AssetArchive):
        return {"archive": {k: _plain(v) for k, v in sorted(value.assets.items())}}
    if isinstance(value, pulumi.StringAsset):
        return {"asset": "text", "sha256": hashlib.sha256(str(value.text).encode()).hexdigest()}
    return value


def reveal(value: Any) -> Any:
    """Secrets unwrapped, at any depth."""
    if rpc.is_rpc_secret(value):
        return reveal(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def duration_s(text: str) -> float:
    """A Pulumi custom-timeout duration ("4h", "1h30m", "90s") in seconds; 0 when empty."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text or "")
    return sum(float(amount) * units[unit] for amount, unit in parts)


def _urn_qualified_type(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::<qualified type>::<name>` -> the qualified type."""
    return urn.split("::")[2]
