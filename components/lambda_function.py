"""The one way a component declares a Lambda function: its log group (JSON logs, a set
retention), a role only Lambda of this account may assume holding the function's grants and its
own log writes, and the function on the runtime every Floodgate function uses."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components import iam
from components.service_role import service_role

RUNTIME, ARCH = "python3.12", "arm64"


def lambda_function(
    function_name: str,
    *,
    handler: str,
    code: pulumi.Archive,
    timeout_s: int,
    memory_mb: int,
    environment: dict[str, pulumi.Input[str]],
    grants: list[iam.Grant],
    log_retention_days: int,
    account: pulumi.Input[str],
    tags: dict[str, str],
    parent: pulumi.Resource,
    layers: list[pulumi.Input[str]] | None = None,
    reserved_concurrency: int | None = None,
) -> aws.lambda_.Function:
    """`function_name` (also every resource's name), its logs, role and policy."""
    child = pulumi.ResourceOptions(parent=parent)
    logs = aws.cloudwatch.LogGroup(
        function_name,
        name=f"/aws/lambda/{function_name}",
        retention_in_days=log_retention_days,
        tags=tags,
        opts=child,
    )
    role = service_role(function_name, "lambda.amazonaws.com", tags, child, account)
    own_logs = iam.Grant(
        ["logs:CreateLogStream", "logs:PutLogEvents"], pulumi.Output.concat(logs.arn, ":*")
    )
    aws.iam.RolePolicy(
        function_name, role=role.id, policy=iam.policy([*grants, own_logs]), opts=child
    )
    return aws.lambda_.Function(
        function_name,
        name=function_name,
        runtime=RUNTIME,
        architectures=[ARCH],
        handler=handler,
        code=code,
        layers=layers,
        role=role.arn,
        timeout=timeout_s,
        memory_size=memory_mb,
        reserved_concurrent_executions=reserved_concurrency,
        environment={"variables": environment},
        logging_config={"log_format": "JSON", "log_group": logs.name},
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[logs]),
    )
