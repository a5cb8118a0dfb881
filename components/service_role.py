"""IAM roles that an AWS service assumes; permissions are attached by the caller."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from components import iam


def service_role(
    name: str,
    service: str | list[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
    source_account: pulumi.Input[str] | None = None,
) -> aws.iam.Role:
    """A role only `service` (e.g. "ec2.amazonaws.com", or a list of services) may assume,
    with no permissions yet.

    `source_account`: the service may assume it only on behalf of this account (confused-deputy
    prevention, aws:SourceAccount). Only for services that send the key when they assume a
    role (EventBridge Scheduler, Lambda, VPC Flow Logs document it); EC2 does not, and an
    instance profile role with the condition could not be assumed."""

    def trust(account: str | None) -> str:
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Principal": {"Service": service},
        }
        if account is not None:
            statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account}}
        return iam.document([statement])

    policy = (
        pulumi.Output.from_input(source_account).apply(trust)
        if source_account is not None
        else trust(None)
    )
    return aws.iam.Role(name, assume_role_policy=policy, tags=tags, opts=opts)
