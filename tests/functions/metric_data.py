"""CloudWatch's GetMetricData over the datapoints a test put, as CloudWatch answers it.

moto's GetMetricData computes no percentile (a `p95` query fails inside moto), and the inlet
reads the targets' p95 response time. This wraps a moto client: `put_metric_data` is recorded
and passed on; `get_metric_data` is answered here, enforcing what the real API refuses.
Sources: Amazon CloudWatch API Reference, GetMetricData and MetricDataQuery (1 to 500 queries;
`Id` starts with a lowercase letter, then letters, digits and underscores, unique in the
request; StartTime before EndTime, rounded down to the minute within 15 days; `Period` 1, 5,
10, 30 or a multiple of 60 s (below 60 only high-resolution custom metrics have data); `Stat` one of
SampleCount, Average, Sum, Minimum, Maximum or a percentile pNN[.NN]; results newest first
unless ScanBy is TimestampAscending); CloudWatch concepts (a metric is its namespace, name and
exact set of dimensions: a query names every dimension of the metric it reads).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d{1,2})?|100)$")
STATS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
HIGH_RESOLUTION_PERIODS = (1, 5, 10, 30)


def _refuse(message: str) -> ClientError:
    return ClientError({"Error": {"Code": "ValidationError", "Message": message}}, "GetMetricData")


def _instant(value: Any) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


@dataclass
class MetricData:
    """A moto CloudWatch client whose GetMetricData is answered from what was put."""

    client: Any
    points: list[tuple[str, str, frozenset[tuple[str, str]], float, list[float]]] = field(
        default_factory=list
    )
    """(namespace, name, dimensions, time, samples)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def put_metric_data(self, **kwargs: Any) -> Any:
        for datum in kwargs["MetricData"]:
            if "Values" in datum:
                counts = datum.get("Counts") or [1] * len(datum["Values"])
                samples = [
                    v for v, n in zip(datum["Values"], counts, strict=True) for _ in range(int(n))
                ]
            else:
                samples = [float(datum["Value"])]
            dims = frozenset((d["Name"], d["Value"]) for d in datum.get("Dimensions", []))
            at = _instant(datum.get("Timestamp", datetime.now(UTC)))
            self.points.append((kwargs["Namespace"], datum["MetricName"], dims, at, samples))
        return self.client.put_metric_data(**kwargs)

    def get_metric_data(
        self,
        MetricDataQueries: list[dict[str, Any]],  # noqa: N803 - the API's own names
        StartTime: Any,  # noqa: N803
        EndTime: Any,  # noqa: N803
        ScanBy: str = "TimestampDescending",  # noqa: N803
        **_: Any,
    ) -> dict[str, Any]:
        start, end = _instant(StartTime) // 60 * 60, _instant(EndTime)
        if not 1 <= len(MetricDataQueries) <= 500:
            raise _refuse("MetricDataQueries must hold 1 to 500 queries")
        if start >= end:
            raise _refuse("The parameter StartTime must be before EndTime")
        ids = [q.get("Id", "") for q in MetricDataQueries]
        for query_id in ids:
            if not ID.match(query_id):
                raise _refuse(f"Invalid metric data query id {query_id!r}")
        if len(set(ids)) != len(ids):
            raise _refuse("The metric data query ids must be unique")
        results = [self._answer(q, start, end) for q in MetricDataQueries]
        if ScanBy == "TimestampAscending":
            for r in results:
                r["Timestamps"].reverse()
                r["Values"].reverse()
        return {"MetricDataResults": results, "Messages": []}

    def _answer(self, query: dict[str, Any], start: float, end: float) -> dict[str, Any]:
        stat = query["MetricStat"]
        period, kind = int(stat["Period"]), stat["Stat"]
        if not (period in HIGH_RESOLUTION_PERIODS or (period > 0 and period % 60 == 0)):
            raise _refuse(f"Period {period} must be 1, 5, 10, 30 or a multiple of 60")
        if kind not in STATS and not PERCENTILE.match(kind):
            raise _refuse(f"Invalid statistic {kind!r}")
        metric = stat["Metric"]
        dims = frozenset((d["Name"], d["Value"]) for d in metric.get("Dimensions", []))
        buckets: dict[float, list[float]] = {}
        for ns, name, have, at, samples in self.points:
            wanted = (ns, name, have) == (metric["Namespace"], metric["MetricName"], dims)
            if wanted and start <= at < end:
                bucket = start + (at - start) // period * period
                buckets.setdefault(bucket, []).extend(samples)
        newest_first = sorted(buckets, reverse=True)
        return {
            "Id": query["Id"],
            "Label": metric["MetricName"],
            "Timestamps": [datetime.fromtimestamp(t, UTC) for t in newest_first],
            "Values": [_statistic(kind, buckets[t]) for t in newest_first],
            "StatusCode": "Complete",
        }


def _statistic(kind: str, samples: Iterable[float]) -> float:
    values = sorted(samples)
    if kind == "Sum":
        return sum(values)
    if kind == "Average":
        return sum(values) / len(values)
    if kind == "Minimum":
        return values[0]
    if kind == "Maximum":
        return values[-1]
    if kind == "SampleCount":
        return float(len(values))
    rank = math.ceil(float(kind[1:]) / 100 * len(values))  # nearest rank
    return values[max(rank, 1) - 1]
