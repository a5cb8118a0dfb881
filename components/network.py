"""VPC with a public and a private subnet per zone, NAT, an S3 gateway endpoint and flow logs."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.service_role import service_role
from planning.settings import NetworkSettings

# Subnets are /20s (4,091 usable addresses): public ones from the first half of the VPC block,
# private ones from the second, so adding a zone never renumbers an existing subnet.
_SUBNET_BITS = 4


def subnet_cidrs(vpc_cidr: str, zone_count: int) -> tuple[list[str], list[str]]:
    """Public and private CIDR blocks, one of each per zone."""
    blocks = list(ipaddress.IPv4Network(vpc_cidr).subnets(prefixlen_diff=_SUBNET_BITS))
    half = len(blocks) // 2
    return (
        [str(b) for b in blocks[:zone_count]],
        [str(b) for b in blocks[half : half + zone_count]],
    )


@dataclass(frozen=True, kw_only=True)
class NetworkArgs:
    settings: NetworkSettings
    region: str
    tags: dict[str, str]


class Network(pulumi.ComponentResource):
    """The portal's VPC. Instances live only in private subnets; only the ALB and NAT are public."""

    vpc: aws.ec2.Vpc
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("floodgate:network:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        s, tags = args.settings, args.tags

        def tagged(label: str) -> dict[str, str]:
            return {**tags, "Name": f"{name}-{label}"}

        self.vpc = aws.ec2.Vpc(
            name,
            cidr_block=s.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=tagged("vpc"),
            opts=child,
        )
        # FSBP EC2.2: adopt the VPC's default security group and strip its rules, so nothing
        # launched without a group of its own can talk to anything.
        aws.ec2.DefaultSecurityGroup(
            name, vpc_id=self.vpc.id, ingress=[], egress=[], tags=tagged("default"), opts=child
        )
        igw = aws.ec2.InternetGateway(name, vpc_id=self.vpc.id, tags=tagged("igw"), opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags=tagged("public"),
            opts=child,
        )
        public_cidrs, private_cidrs = subnet_cidrs(s.vpc_cidr, len(s.zones))

        def zone_subnet(
            kind: str, zone: str, cidr: str, route_table_id: pulumi.Input[str]
        ) -> aws.ec2.Subnet:
            created = aws.ec2.Subnet(
                f"{name}-{kind}-{zone}",
                vpc_id=self.vpc.id,
                cidr_block=cidr,
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags=tagged(f"{kind}-{zone}"),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-{kind}-{zone}",
                subnet_id=created.id,
                route_table_id=route_table_id,
                opts=child,
            )
            return created

        public = [
            zone_subnet("public", zone, cidr, public_rt.id)
            for zone, cidr in zip(s.zones, public_cidrs, strict=True)
        ]
        self.public_subnet_ids = [p.id for p in public]
        self.private_subnet_ids = []

        # One NAT per zone in prod: a zone outage must not cut the other zones' egress.
        nat_zones = s.zones if s.nat_gateways == "per_zone" else s.zones[:1]
        nats: dict[str, aws.ec2.NatGateway] = {}
        for zone, subnet in zip(s.zones, public, strict=True):
            if zone not in nat_zones:
                continue
            eip = aws.ec2.Eip(
                f"{name}-nat-{zone}", domain="vpc", tags=tagged(f"nat-{zone}"), opts=child
            )
            nats[zone] = aws.ec2.NatGateway(
                f"{name}-{zone}",
                allocation_id=eip.id,
                subnet_id=subnet.id,
                tags=tagged(f"nat-{zone}"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
            )

        private_rts: list[pulumi.Output[str]] = []
        for zone, cidr in zip(s.zones, private_cidrs, strict=True):
            nat = nats.get(zone) or nats[nat_zones[0]]
            rt = aws.ec2.RouteTable(
                f"{name}-private-{zone}",
                vpc_id=self.vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                tags=tagged(f"private-{zone}"),
                opts=child,
            )
            self.private_subnet_ids.append(zone_subnet("private", zone, cidr, rt.id).id)
            private_rts.append(rt.id)

        # S3 traffic (AL2023 packages, logs) stays off the NAT: cheaper and one less hop.
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=self.vpc.id,
            vpc_endpoint_type="Gateway",
            service_name=f"com.amazonaws.{args.region}.s3",
            route_table_ids=private_rts,
            tags=tagged("s3"),
            opts=child,
        )

        log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            retention_in_days=s.flow_log_retention_days,
            tags=tags,
            opts=child,
        )
        account = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id
        role = service_role(
            f"{name}-flow-logs", "vpc-flow-logs.amazonaws.com", tags, child, account
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=role.id,
            policy=log_group.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": [
                                    "logs:CreateLogStream",
                                    "logs:PutLogEvents",
                                    "logs:DescribeLogStreams",
                                ],
                                "Resource": [arn, f"{arn}:*"],
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        aws.ec2.FlowLog(
            name,
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags=tags,
            opts=child,
        )
        self.register_outputs(
            {"vpc_id": self.vpc.id, "private_subnet_ids": self.private_subnet_ids}
        )
