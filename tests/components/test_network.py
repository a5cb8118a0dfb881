"""Network: subnets per zone, NAT per zone in prod, S3 endpoint on private routes, flow logs."""

from __future__ import annotations

import ipaddress

import pytest

from components.network import Network, NetworkArgs, subnet_cidrs


def build(evaluate, settings):
    return evaluate(
        lambda: Network(
            "net", NetworkArgs(settings=settings.network, region=settings.region, tags={})
        )
    )


def test_subnets_are_disjoint_and_inside_the_vpc() -> None:
    public, private = subnet_cidrs("10.40.0.0/16", 3)
    nets = [ipaddress.IPv4Network(c) for c in public + private]
    assert all(n.subnet_of(ipaddress.IPv4Network("10.40.0.0/16")) for n in nets)
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])


def test_adding_a_zone_does_not_renumber_existing_subnets() -> None:
    two, three = subnet_cidrs("10.40.0.0/16", 2), subnet_cidrs("10.40.0.0/16", 3)
    assert three[0][:2] == two[0] and three[1][:2] == two[1]


def test_prod_has_one_nat_per_zone_and_each_zone_routes_to_its_own(evaluate, prod) -> None:
    run = build(evaluate, prod)
    nats = run.of_type("aws:ec2/natGateway:NatGateway")
    assert len(nats) == 3
    nat_id_by_zone = {n.name.removeprefix("net-"): n.id for n in nats}
    for zone in prod.network.zones:
        (table,) = [
            r
            for r in run.of_type("aws:ec2/routeTable:RouteTable")
            if r.name == f"net-private-{zone}"
        ]
        assert table.inputs["routes"] == [
            {"cidrBlock": "0.0.0.0/0", "natGatewayId": nat_id_by_zone[zone]}
        ]


def test_dev_shares_one_nat(evaluate, dev) -> None:
    run = build(evaluate, dev)
    (nat,) = run.of_type("aws:ec2/natGateway:NatGateway")
    private_tables = [
        r for r in run.of_type("aws:ec2/routeTable:RouteTable") if "-private-" in r.name
    ]
    assert len(private_tables) == 2
    assert all(t.inputs["routes"][0]["natGatewayId"] == nat.id for t in private_tables)


@pytest.mark.parametrize("kind", ["public", "private"])
def test_no_subnet_hands_out_public_ips(evaluate, prod, kind: str) -> None:
    subnets = [
        s for s in build(evaluate, prod).of_type("aws:ec2/subnet:Subnet") if f"-{kind}-" in s.name
    ]
    assert len(subnets) == 3
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)


def test_s3_endpoint_serves_every_private_route_table(evaluate, prod) -> None:
    run = build(evaluate, prod)
    endpoint = run.one("aws:ec2/vpcEndpoint:VpcEndpoint")
    private_tables = {
        r.id for r in run.of_type("aws:ec2/routeTable:RouteTable") if "-private-" in r.name
    }
    assert endpoint.inputs["serviceName"] == "com.amazonaws.ca-central-1.s3"
    assert endpoint.inputs["vpcEndpointType"] == "Gateway"
    assert set(endpoint.inputs["routeTableIds"]) == private_tables


def test_flow_logs_capture_all_traffic_with_retention(evaluate, prod) -> None:
    run = build(evaluate, prod)
    assert run.one("aws:ec2/flowLog:FlowLog").inputs["trafficType"] == "ALL"
    log_group = run.one("aws:cloudwatch/logGroup:LogGroup")
    assert log_group.inputs["retentionInDays"] == prod.network.flow_log_retention_days
