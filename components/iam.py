"""The one way components write IAM policy documents: `document` from statements, and
`policy` from `Grant`s whose resources are Outputs (an ARN known only once it exists)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi

VERSION = "2012-10-17"


def document(statements: Sequence[Mapping[str, Any]]) -> str:
    """A policy document (JSON) with `statements`, in the order given."""
    return json.dumps({"Version": VERSION, "Statement": list(statements)})


@dataclass(frozen=True)
class Grant:
    """One policy statement: `actions` on `resources` (an ARN, "*" or a list of ARNs), with
    `leading_keys` (the room table's `pk` values, `*` a wildcard) or another `condition`."""

    actions: list[str]
    resources: pulumi.Input[str] | pulumi.Input[list[str]] | list[pulumi.Output[str]]
    leading_keys: list[str] | None = None
    condition: dict[str, Any] | None = None

    def statement(self, resources: str | list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"Effect": "Allow", "Action": self.actions, "Resource": resources}
        if self.leading_keys is not None:
            # Every key the request touches must match (BatchGetItem too): ForAllValues.
            out["Condition"] = {
                "ForAllValues:StringLike": {"dynamodb:LeadingKeys": self.leading_keys}
            }
        elif self.condition is not None:
            out["Condition"] = self.condition
        return out


def policy(grants: list[Grant]) -> pulumi.Output[str]:
    """An IAM policy document from `grants`, once their resources are known."""
    return pulumi.Output.all(*(g.resources for g in grants)).apply(
        lambda resources: document([g.statement(r) for g, r in zip(grants, resources, strict=True)])
    )
