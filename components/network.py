"""VPC with a public and a private subnet per zone, NAT, an S3 gateway endpoint and flow logs."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components import iam
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
        self._name, self._args = name, args
        self._child = pulumi.ResourceOptions(parent=self)
        igw = self._declare_vpc()
        public_cidrs, private_cidrs = subnet_cidrs(args.settings.vpc_cidr, len(args.settings.zones))
        public = self._declare_public_subnets(igw, public_cidrs)
        self.public_subnet_ids = [p.id for p in public]
        nats = self._declare_nat_gateways(igw, public)
        private_route_tables = self._declare_private_subnets(nats, private_cidrs)
        self._declare_s3_endpoint(private_route_tables)
        self._declare_flow_logs()
        self.register_outputs(
            {"vpc_id": self.vpc.id, "private_subnet_ids": self.private_subnet_ids}
        )

    def _tagged(self, label: str) -> dict[str, str]:
        return {**self._args.tags, "Name": f"{self._name}-{label}"}

    def _declare_vpc(self) -> aws.ec2.InternetGateway:
        """The VPC, its default security group stripped, and its internet gateway."""
        name, child = self._name, self._child
        self.vpc = aws.ec2.Vpc(
            name,
            cidr_block=self._args.settings.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=self._tagged("vpc"),
            opts=child,
        )
        # FSBP EC2.2: adopt the VPC's default security group and strip its rules, so nothing
        # launched without a group of its own can talk to anything.
        aws.ec2.DefaultSecurityGroup(
            name,
            vpc_id=self.vpc.id,
            ingress=[],
            egress=[],
            tags=self._tagged("default"),
            opts=child,
        )
        return aws.ec2.InternetGateway(
            name, vpc_id=self.vpc.id, tags=self._tagged("igw"), opts=child
        )

    def _zone_subnet(
        self, kind: str, zone: str, cidr: str, route_table_id: pulumi.Input[str]
    ) -> aws.ec2.Subnet:
        """One subnet of `kind` (public or private) in `zone`, on `route_table_id`."""
        name, child = self._name, self._child
        created = aws.ec2.Subnet(
            f"{name}-{kind}-{zone}",
            vpc_id=self.vpc.id,
            cidr_block=cidr,
            availability_zone=zone,
            map_public_ip_on_launch=False,
            tags=self._tagged(f"{kind}-{zone}"),
            opts=child,
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-{kind}-{zone}",
            subnet_id=created.id,
            route_table_id=route_table_id,
            opts=child,
        )
        return created

    def _declare_public_subnets(
        self, igw: aws.ec2.InternetGateway, cidrs: list[str]
    ) -> list[aws.ec2.Subnet]:
        """One public subnet per zone, routed to the internet gateway (the ALB and NAT)."""
        public_rt = aws.ec2.RouteTable(
            f"{self._name}-public",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags=self._tagged("public"),
            opts=self._child,
        )
        zones = self._args.settings.zones
        return [
            self._zone_subnet("public", zone, cidr, public_rt.id)
            for zone, cidr in zip(zones, cidrs, strict=True)
        ]

    def _declare_nat_gateways(
        self, igw: aws.ec2.InternetGateway, public: list[aws.ec2.Subnet]
    ) -> dict[str, aws.ec2.NatGateway]:
        """NAT gateways by zone. One per zone in prod: a zone outage must not cut the other
        zones' egress; `nat_gateways: one` puts a single one in the first zone."""
        s, name = self._args.settings, self._name
        nat_zones = s.zones if s.nat_gateways == "per_zone" else s.zones[:1]
        nats: dict[str, aws.ec2.NatGateway] = {}
        for zone, subnet in zip(s.zones, public, strict=True):
            if zone not in nat_zones:
                continue
            eip = aws.ec2.Eip(
                f"{name}-nat-{zone}",
                domain="vpc",
                tags=self._tagged(f"nat-{zone}"),
                opts=self._child,
            )
            nats[zone] = aws.ec2.NatGateway(
                f"{name}-{zone}",
                allocation_id=eip.id,
                subnet_id=subnet.id,
                tags=self._tagged(f"nat-{zone}"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
            )
        return nats

    def _declare_private_subnets(
        self, nats: dict[str, aws.ec2.NatGateway], cidrs: list[str]
    ) -> list[pulumi.Output[str]]:
        """One private subnet per zone (the instances), each with a route table to its zone's
        NAT (or the only one). Returns the route tables' ids."""
        zones = self._args.settings.zones
        first_nat = nats[next(z for z in zones if z in nats)]
        self.private_subnet_ids = []
        route_tables: list[pulumi.Output[str]] = []
        for zone, cidr in zip(zones, cidrs, strict=True):
            nat = nats.get(zone) or first_nat
            rt = aws.ec2.RouteTable(
                f"{self._name}-private-{zone}",
                vpc_id=self.vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                tags=self._tagged(f"private-{zone}"),
                opts=self._child,
            )
            self.private_subnet_ids.append(self._zone_subnet("private", zone, cidr, rt.id).id)
            route_tables.append(rt.id)
        return route_tables

    def _declare_s3_endpoint(self, route_table_ids: list[pulumi.Output[str]]) -> None:
        """S3 traffic (AL2023 packages, logs) stays off the NAT: cheaper and one less hop."""
        aws.ec2.VpcEndpoint(
            f"{self._name}-s3",
            vpc_id=self.vpc.id,
            vpc_endpoint_type="Gateway",
            service_name=f"com.amazonaws.{self._args.region}.s3",
            route_table_ids=route_table_ids,
            tags=self._tagged("s3"),
            opts=self._child,
        )

    def _declare_flow_logs(self) -> None:
        """VPC flow logs (all traffic, 1-minute aggregation) to CloudWatch Logs, through a
        role only the flow-logs service of this account may assume."""
        name, tags, child = self._name, self._args.tags, self._child
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            retention_in_days=self._args.settings.flow_log_retention_days,
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
                lambda arn: iam.document(
                    [
                        {
                            "Effect": "Allow",
                            "Action": [
                                "logs:CreateLogStream",
                                "logs:PutLogEvents",
                                "logs:DescribeLogStreams",
                            ],
                            "Resource": [arn, f"{arn}:*"],
                        }
                    ]
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
