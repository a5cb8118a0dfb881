"""The portal: network, load balancer, web fleet, edge and observability, wired together."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.admission import (
    DEMAND_METRIC,
    METRIC_NAMESPACE,
    Admission,
    AdmissionArgs,
)
from components.edge import Edge, EdgeArgs
from components.inbox import Inbox, InboxArgs
from components.load_balancer import LoadBalancer, LoadBalancerArgs
from components.network import Network, NetworkArgs
from components.observability import Observability, ObservabilityArgs
from components.prescale import Prescale, PrescaleArgs
from components.web_fleet import DemandMetric, WebFleet, WebFleetArgs
from planning.capacity import demand_period_s, queue_api_design, room_tunables
from planning.event_plan import EventPlan, night_plan
from planning.settings import Settings


class Portal(pulumi.ComponentResource):
    """The request path, event pre-scaling and the waiting room.

    `event_plans` are the events inside the horizon, soonest first; the warm pool is sized for
    the first of them.
    """

    outputs: dict[str, pulumi.Output[Any]]

    def __init__(
        self,
        name: str,
        settings: Settings,
        event_plans: list[EventPlan],
        now: datetime,
        opts: pulumi.ResourceOptions | None = None,
        *,
        require_layer: bool = True,
    ) -> None:
        super().__init__("floodgate:portal:Portal", name, None, opts)
        self._name, self._settings = name, settings
        self._child = pulumi.ResourceOptions(parent=self)
        self._tags = settings.stack_tags
        slots = self._declare_origin_secrets()
        us_east_1 = aws.Provider(
            f"{name}-us-east-1",
            region="us-east-1",
            default_tags={"tags": self._tags},
            opts=self._child,
        )
        network, lb = self._declare_network_and_load_balancer(slots)
        fleet = self._declare_fleet(network, lb, event_plans)
        admission, wire_room = self._declare_room(fleet, lb, slots, require_layer)
        topic_arn, resolve_topic_arn = pulumi.deferred_output()
        inbox = self._declare_inbox(topic_arn)
        edge = self._declare_edge(slots, us_east_1, admission, inbox)
        observability = self._declare_observability(lb, fleet, edge, us_east_1)
        wire_room(observability)
        resolve_topic_arn(observability.topic.arn)
        prescale = self._declare_prescale(event_plans, now, fleet, lb, admission, observability)

        # What scripts (pre-scale, PR preview) and operators read from the stack.
        self.outputs = {
            "scheduled_actions": pulumi.Output.from_input(prescale.action_names),
            "prescale_schedule": prescale.schedule_name,
            "prescale_dlq_url": prescale.dlq_url,
            "prescale_function": prescale.function_name,
            "cdn_domain_name": edge.distribution.domain_name,
            "distribution_id": edge.distribution.id,
            "web_acl_arn": edge.web_acl.arn,
            "alb_dns_name": lb.alb.dns_name,
            "alb_arn": lb.alb.arn,
            "target_group_arn": lb.target_group.arn,
            "asg_name": fleet.group.name,
            "alarm_topic_arn": observability.topic.arn,
            "edge_alarm_topic_arn": observability.edge_topic.arn,
            "pages_bucket": edge.pages_bucket.bucket,
            "vpc_id": network.vpc.id,
        }
        if admission is not None:
            self.outputs |= {
                "room_table": admission.table.name,
                "room_admin_function": admission.admin_function_name,
                "room_kvs_arn": admission.kvs.arn,
                "queue_api": admission.api.api_endpoint,
            }
        if inbox is not None:
            self.outputs |= {
                "inbox_queue_url": inbox.queue.url,
                "inbox_dlq_url": inbox.dlq.url,
                "inbox_table": inbox.table.name,
                "inbox_api": inbox.api.api_endpoint,
                "inbox_consumer": inbox.consumer.name,
            }
        if inbox is not None and inbox.uploads is not None:
            self.outputs["inbox_uploads"] = inbox.uploads.bucket
        self.register_outputs(dict(self.outputs))

    def _declare_inbox(self, topic_arn: pulumi.Output[str]) -> Inbox | None:
        """The inbox (None unless `inbox.path_patterns` names paths), alarming on the stack's
        topic once Observability has declared it."""
        settings = self._settings
        if not settings.inbox.enabled:
            return None
        return Inbox(
            self._name,
            InboxArgs(
                settings=settings.inbox,
                alarm_topic_arn=topic_arn,
                log_group_retention_days=settings.admission.log_group_retention_days,
                protect=not settings.ephemeral,
                tags=self._tags,
                api_certificate_arn=settings.inbox.api_certificate_arn
                or settings.load_balancer.certificate_arn,
                hosted_zone_id=settings.load_balancer.hosted_zone_id,
            ),
            opts=self._child,
        )

    def _declare_prescale(
        self,
        event_plans: list[EventPlan],
        now: datetime,
        fleet: WebFleet,
        lb: LoadBalancer,
        admission: Admission | None,
        observability: Observability,
    ) -> Prescale:
        """The events' scheduled actions and the runner that carries every other lever, with
        its alarms on the stack's topic."""
        settings = self._settings
        return Prescale(
            self._name,
            PrescaleArgs(
                plans=event_plans,
                night_plan=night_plan(event_plans, settings, pulumi.get_stack()),
                settings=settings.prescale,
                group_name=fleet.group.name,
                group_arn=fleet.group.arn,
                alb_arn=lb.alb.arn,
                room_table=admission.table.name if admission else None,
                room_table_arn=admission.table.arn if admission else None,
                alarm_topic_arn=observability.topic.arn,
                log_retention_days=settings.prescale.log_group_retention_days,
                tags=self._tags,
                now=now,
            ),
            opts=self._child,
        )

    def _declare_origin_secrets(self) -> dict[str, random.RandomPassword]:
        """CloudFront proves itself to the ALB with this header. It lives only in Pulumi state
        (encrypted as a secret). Two slots: the ALB accepts both and CloudFront sends the one
        `load_balancer.origin_secret_slot` names, so a rotation (replace the idle slot, then
        switch) never meets an edge location still sending the old value."""
        return {
            slot: random.RandomPassword(
                f"{self._name}-origin-secret{'' if slot == 'a' else '-b'}",
                length=48,
                special=False,
                opts=self._child,
            )
            for slot in ("a", "b")
        }

    def _declare_network_and_load_balancer(
        self, slots: dict[str, random.RandomPassword]
    ) -> tuple[Network, LoadBalancer]:
        """The VPC, and the ALB in its public subnets accepting both origin secrets."""
        name, settings, tags = self._name, self._settings, self._tags
        network = Network(
            name,
            NetworkArgs(settings=settings.network, region=settings.region, tags=tags),
            opts=self._child,
        )
        lb = LoadBalancer(
            name,
            LoadBalancerArgs(
                settings=settings.load_balancer,
                region=settings.region,
                vpc_id=network.vpc.id,
                vpc_cidr=settings.network.vpc_cidr,
                public_subnet_ids=network.public_subnet_ids,
                origin_secrets=[slot.result for slot in slots.values()],
                tags=tags,
                ephemeral=settings.ephemeral,
            ),
            opts=self._child,
        )
        return network, lb

    def _declare_fleet(
        self, network: Network, lb: LoadBalancer, event_plans: list[EventPlan]
    ) -> WebFleet:
        """The web group in the private subnets behind the target group, its warm pool sized
        for the first upcoming event, scaling on the room's demand when there is a room."""
        settings = self._settings
        demand_metric = (
            DemandMetric(
                namespace=METRIC_NAMESPACE,
                name=DEMAND_METRIC,
                room_id=settings.admission.room_id,
                period_s=demand_period_s(settings),
            )
            if settings.admission.enabled
            else None
        )
        return WebFleet(
            self._name,
            WebFleetArgs(
                settings=settings.fleet,
                load_balancer=settings.load_balancer,
                vpc_id=network.vpc.id,
                private_subnet_ids=network.private_subnet_ids,
                alb_security_group_id=lb.security_group.id,
                target_group_arn=lb.target_group.arn,
                target_group_attached=lb.forward_rule,
                request_count_label=lb.request_count_label,
                warm_pool_min_size=event_plans[0].warm_pool if event_plans else None,
                demand_metric=demand_metric,
                tags=self._tags,
            ),
            opts=self._child,
        )

    def _declare_room(
        self,
        fleet: WebFleet,
        lb: LoadBalancer,
        slots: dict[str, random.RandomPassword],
        require_layer: bool,
    ) -> tuple[Admission | None, Callable[[Observability], None]]:
        """The waiting room (None when `admission.enabled` is false), and the function that
        wires it to Observability once that exists: the room pauses on its origin 5xx alarms,
        which watch the distribution, which routes to the room's API."""
        settings = self._settings
        pause_alarms, resolve_pause_alarms = pulumi.deferred_output()
        pause_alarm_arns, resolve_pause_alarm_arns = pulumi.deferred_output()
        topic_arn, resolve_topic_arn = pulumi.deferred_output()

        def wire(observability: Observability) -> None:
            alarms = observability.origin_5xx_alarms
            resolve_pause_alarms(pulumi.Output.all(*(a.name for a in alarms)))
            resolve_pause_alarm_arns(pulumi.Output.all(*(a.arn for a in alarms)))
            resolve_topic_arn(observability.topic.arn)

        if not settings.admission.enabled:
            return None, wire
        admission = Admission(
            self._name,
            AdmissionArgs(
                settings=settings.admission,
                tunables=room_tunables(settings),
                queue_api=queue_api_design(settings),
                asg_name=fleet.group.name,
                target_group_arn_suffix=lb.target_group_arn_suffix,
                load_balancer_arn_suffix=lb.alb_arn_suffix,
                pause_alarm_names=pause_alarms,
                pause_alarm_arns=pause_alarm_arns,
                origin_secrets=[slot.result for slot in slots.values()],
                api_certificate_arn=settings.admission.api_certificate_arn
                or settings.load_balancer.certificate_arn,
                hosted_zone_id=settings.load_balancer.hosted_zone_id,
                alarm_topic_arn=topic_arn,
                protect=not settings.ephemeral,
                tags=self._tags,
                require_layer=require_layer,
            ),
            opts=self._child,
        )
        return admission, wire

    def _declare_edge(
        self,
        slots: dict[str, random.RandomPassword],
        us_east_1: aws.Provider,
        admission: Admission | None,
        inbox: Inbox | None,
    ) -> Edge:
        """The distribution, sending the current slot's origin secret, gated by the room, its
        inbox paths to the inbox."""
        settings = self._settings
        return Edge(
            self._name,
            EdgeArgs(
                settings=settings.edge,
                waf=settings.waf,
                origin_domain_name=settings.load_balancer.origin_domain_name,
                origin_secret=slots[settings.load_balancer.origin_secret_slot].result,
                us_east_1=us_east_1,
                admission=admission.edge if admission else None,
                inbox=inbox.edge if inbox else None,
                tags=self._tags,
                ephemeral=settings.ephemeral,
            ),
            opts=self._child,
        )

    def _declare_observability(
        self, lb: LoadBalancer, fleet: WebFleet, edge: Edge, us_east_1: aws.Provider
    ) -> Observability:
        """Topics, alarms along the request path and the dashboard."""
        settings = self._settings
        return Observability(
            self._name,
            ObservabilityArgs(
                settings=settings.alarms,
                region=settings.region,
                alb_arn_suffix=lb.alb_arn_suffix,
                target_group_arn_suffix=lb.target_group_arn_suffix,
                group_name=fleet.group.name,
                fleet_max_size=settings.fleet.max_size,
                distribution_id=edge.distribution.id,
                us_east_1=us_east_1,
                gate_function_name=edge.gate_function.name if edge.gate_function else None,
                edge_log_retention_days=settings.edge.log_group_retention_days,
                tags=self._tags,
            ),
            opts=self._child,
        )
