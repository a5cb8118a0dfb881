"""How AWS and people behave in the rehearsal: each behaviour a named constant, with its source.

Where AWS documents a range, the rehearsal spreads a batch of launches evenly across it (no
randomness: a rehearsal run twice gives the same figures). Where nothing documents a figure, the
constant says it is an assumption.
"""

from __future__ import annotations

METRIC_PERIOD_S = 60
"""ALBRequestCountPerTarget is a one-minute metric; target tracking reads it per minute and the
waiting room's inlet reads the latest datapoint. Source: Elastic Load Balancing, CloudWatch
metrics for your Application Load Balancer (RequestCountPerTarget, 60 s period)."""

SCALE_OUT_DATAPOINTS = 3
"""Target tracking's high alarm fires after 3 datapoints above the target in 3 minutes.
SCALE_IN_DATAPOINTS = 15: its low alarm after 15 below in 15 minutes. Source: Amazon EC2 Auto
Scaling User Guide, target tracking scaling policies (the alarms it creates and manages),
https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-scaling-target-tracking.html."""
SCALE_IN_DATAPOINTS = 15
"""The same counts hold, in the rehearsal, for the room-demand policy on its high-resolution
period (10 s: out after 30 s, in after 150 s): AWS documents the periods (10, 30, 60) but not
the datapoints of the alarms it manages for them. An assumption; the CPU and requests policies
still hold scale-in for 15 minutes, and all must agree."""
SCALE_IN_THRESHOLD = 0.9
"""The low alarm's threshold is 90 % of the target value (same source: target tracking keeps
capacity a little above the target rather than flapping).

With several target tracking policies (requests, CPU, the room's demand), Auto Scaling follows
the one asking for the most capacity and scales in only when every policy is ready to. Source:
Amazon EC2 Auto Scaling User Guide, target tracking scaling policies, multiple policies.

While instances warm up (`fleet.default_warmup_s`), dynamic scaling is conservative: it blocks
scale-in until they finish. Source: Amazon EC2 Auto Scaling User Guide, set the default instance
warmup, https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-default-instance-warmup.html."""

COLD_LAUNCH_S = (180, 300)
"""A new instance from launch to serving: boot, user data, application start and the ALB's
health checks (2 x 30 s by default). 3-5 minutes; `prescale.cold_launch_s` plans for the top."""
WARM_LAUNCH_S = (30, 60)
"""A stopped warm-pool instance from start to serving: it already ran its user data. Source:
Amazon EC2 Auto Scaling User Guide, warm pools ("instances ... ready to serve in seconds
rather than minutes"); 30-60 s with the ALB health checks."""

SCHEDULE_SLIP_S = 120
"""A scheduled action runs within seconds of its start time but may be delayed up to two
minutes. Source: Amazon EC2 Auto Scaling User Guide, scheduled scaling, considerations."""

RUNNER_PHASE_S = 60
"""The runner in AWS passes every `prescale.run_every_minutes` on an EventBridge Scheduler rate
schedule, whose phase is the minute it was created: here one minute past each interval of the
clock. An LCU reservation changes at the first pass after its step, not at the step's own time;
the plan asks for each step one interval early for that reason (event_plan.runner_interval).
Source: EventBridge Scheduler user guide, schedule types ("rate-based schedules ... 60 second
precision")."""

OVERLOAD_STATUS = 503
"""What a request beyond an instance's `requests_per_instance_per_s` gets: the application
refuses it (503) rather than queue it past CloudFront's read timeout. On the stack's
`edge.failover_status_codes` CloudFront answers the custom error response (the high-demand page)
for every behaviour and method; any other code reaches the viewer."""


def page_after_s(attempts: int, connect_timeout_s: int, read_timeout_s: int) -> dict[str, int]:
    """Seconds a viewer whose request fails waits for the high-demand page, by how the origin
    fails: a refused request (a 5xx answer, what the rehearsal assumes of an overloaded
    instance) at once; an origin that accepts no connection after `attempts` x the connection
    timeout; one that connects and stays silent after the read timeout, each attempt. Source:
    Amazon CloudFront Developer Guide, origin settings (connection attempts, connection timeout,
    response timeout) and custom error responses."""
    return {
        "refused": 0,
        "no_connection": attempts * connect_timeout_s,
        "silent": attempts * read_timeout_s,
    }


TIMEOUT_STATUS = 504
"""What a viewer's request gets when the instance it reached queues it past CloudFront's
response timeout (`edge.origin_read_timeout_s`): CloudFront's own 504, after the timeout (each
connection attempt). The ALB counts no target 5xx for it: CloudFront closed the connection
first, which the ALB logs as 460. Source: Amazon CloudFront Developer Guide, origin settings
(response timeout); Elastic Load Balancing, troubleshoot your Application Load Balancer
(HTTP 460)."""

IDLE_CPU_PCT = 5.0
"""An instance's CPU serving nothing (the agent, the runtime, health checks): the rehearsal's
CPU is this plus the work's share of the rest up to capacity_cpu_pct, so a lightly used fleet
reads busier than its load (what makes the inlet's CPU estimate conservative). An assumption:
the fleet's own figure is its CPUUtilization on a quiet night."""

RESPONSE_S = 0.2
"""p95 TargetResponseTime of an instance under its capacity. An assumption: the portal's own
figure is in its load balancer's metrics."""
SATURATED_RESPONSE_S = 2.0
"""p95 TargetResponseTime of an instance at its capacity that refuses what it cannot take:
what it serves waits in its backlog. An assumption, above the alarms' 1 s p95."""

NO_TARGET_STATUS = 503
"""The ALB answers 503 when the target group has no registered target. Source: Elastic Load
Balancing, troubleshoot your Application Load Balancer (HTTP 503: Service unavailable)."""

POLL_S = 15
"""The waiting page polls the status API about every 15 s (functions/pages/waiting-room,
`retry_after_s || 15`, jittered by +-20 %); a visitor notices their admission within a poll."""

JOIN_RETRY_S = 20
"""A join the queue API throttles (429) is retried by the waiting page with a backoff of 5, 10,
20, 40, then 60 s (functions/pages/waiting-room, `failed()`): people held back retry about every
20 s."""

ALB_REFUSED_STATUS = 503
"""What a request beyond what the load balancer holds gets (its load rose faster than it
scales): the load balancer's own 503, counted in HTTPCode_ELB_5XX_Count, not the targets'. An
assumption: AWS documents no behaviour for a load balancer short of capacity beyond its
RejectedConnectionCount ("rejected because the load balancer had reached its maximum number of
connections", ELB user guide, CloudWatch metrics), which CloudFront also answers as a 502."""
