"""IAM roles that an AWS service assumes; permissions are attached by the caller."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws


def service_role(
    name: str, service: str, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> aws.iam.Role:
    """A role only `service` (e.g. "ec2.amazonaws.com") may assume, with no permissions yet."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": service}}
        ],
    }
    return aws.iam.Role(name, assume_role_policy=json.dumps(trust), tags=tags, opts=opts)
