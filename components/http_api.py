"""What Floodgate's HTTP APIs share: access logs on the `$default` stage, and a custom domain.

A custom domain (the domain, its mapping to the stage, its alias record) goes with
`disable_execute_api_endpoint`, so nothing reaches the API (or spends its throttle) except by
this name, which CloudFront uses.
"""

from __future__ import annotations

import json
import re

import pulumi
import pulumi_aws as aws

ACCESS_FORMAT = {
    "requestId": "$context.requestId",
    "route": "$context.routeKey",
    "status": "$context.status",
    "latencyMs": "$context.responseLatency",
    "error": "$context.integrationErrorMessage",
}
"""One JSON line per request (FSBP APIGateway.9): the route, the status, the latency and what
the integration said when it failed."""


def access_logs(
    name: str,
    log_group: str,
    retention_days: int,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> aws.apigatewayv2.StageAccessLogSettingsArgsDict:
    """The stage's `access_log_settings`, into a log group of its own."""
    group = aws.cloudwatch.LogGroup(
        name, name=log_group, retention_in_days=retention_days, tags=tags, opts=opts
    )
    return {"destination_arn": group.arn, "format": json.dumps(ACCESS_FORMAT)}


def origin_host(
    name: str,
    *,
    api: aws.apigatewayv2.Api,
    stage: aws.apigatewayv2.Stage,
    domain_name: str | None,
    certificate_arn: pulumi.Input[str],
    hosted_zone_id: str | None,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> pulumi.Output[str]:
    """The name CloudFront reaches `api` by: its custom domain when `domain_name` is set (with
    the default endpoint disabled by the caller), else the execute-api endpoint's host."""
    if domain_name is None:
        return api.api_endpoint.apply(lambda url: url.removeprefix("https://"))
    assert hosted_zone_id is not None  # settings require it with a custom domain
    return custom_domain(
        name, api=api, stage=stage, domain_name=domain_name, certificate_arn=certificate_arn,
        hosted_zone_id=hosted_zone_id, tags=tags, opts=opts,
    )  # fmt: skip


def custom_domain(
    name: str,
    *,
    api: aws.apigatewayv2.Api,
    stage: aws.apigatewayv2.Stage,
    domain_name: str,
    certificate_arn: pulumi.Input[str],
    hosted_zone_id: str,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> pulumi.Output[str]:
    """The regional custom domain (TLS 1.2) mapped to `stage`, and its alias record in
    `hosted_zone_id` (settings require the zone: CloudFront moves to this name in the same
    update); the name, once both exist."""
    domain = aws.apigatewayv2.DomainName(
        name,
        domain_name=domain_name,
        domain_name_configuration={
            "certificate_arn": certificate_arn,
            "endpoint_type": "REGIONAL",
            "security_policy": "TLS_1_2",
        },
        tags=tags,
        opts=opts,
    )
    mapping = aws.apigatewayv2.ApiMapping(
        name,
        api_id=api.id,
        domain_name=domain.domain_name,
        stage="$default",
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[stage])),
    )
    target = domain.domain_name_configuration
    record = aws.route53.Record(
        name,
        zone_id=hosted_zone_id,
        name=domain_name,
        type="A",
        aliases=[
            {
                "name": target.target_domain_name,
                "zone_id": target.hosted_zone_id,
                "evaluate_target_health": False,
            }
        ],
        opts=opts,
    )
    return pulumi.Output.all(mapping.domain_name, record.name).apply(lambda a: a[0])


def lambda_route(
    name: str,
    *,
    api: aws.apigatewayv2.Api,
    route: str,
    function: aws.lambda_.Function,
    opts: pulumi.ResourceOptions,
) -> aws.apigatewayv2.Route:
    """`route` ("METHOD /path", path variables in braces) to `function` through a proxy
    integration (payload 2.0, API Gateway's 10 s), which API Gateway may invoke for that route
    only: execute-api ARNs are <api>/<stage>/<METHOD>/<path>, a variable there a wildcard."""
    method, path = route.split(" ")
    integration = aws.apigatewayv2.Integration(
        name,
        api_id=api.id,
        integration_type="AWS_PROXY",
        integration_uri=function.invoke_arn,
        payload_format_version="2.0",
        timeout_milliseconds=10_000,
        opts=opts,
    )
    aws.lambda_.Permission(
        name,
        action="lambda:InvokeFunction",
        function=function.name,
        principal="apigateway.amazonaws.com",
        source_arn=pulumi.Output.concat(
            api.execution_arn, "/*/", method, re.sub(r"\{[^}]+\}", "*", path)
        ),
        opts=opts,
    )
    return aws.apigatewayv2.Route(
        name,
        api_id=api.id,
        route_key=route,
        target=integration.id.apply(lambda i: f"integrations/{i}"),
        opts=opts,
    )
