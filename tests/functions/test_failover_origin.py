"""The failover trigger with CloudFront's origin-request event shapes (Lambda@Edge)."""

from __future__ import annotations

import importlib.util
from typing import Any

from components.edge import FAILOVER_ORIGIN_FUNCTION, HIGH_DEMAND_PAGE

_spec = importlib.util.spec_from_file_location("failover_origin", FAILOVER_ORIGIN_FUNCTION)
assert _spec is not None and _spec.loader is not None
failover_origin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(failover_origin)


def event(uri: str, origin: dict[str, Any], querystring: str = "lang=fr") -> dict[str, Any]:
    """An origin-request event as CloudFront sends it (Lambda@Edge event structure)."""
    return {
        "Records": [
            {
                "cf": {
                    "config": {"distributionId": "EDFDVBD6EXAMPLE", "eventType": "origin-request"},
                    "request": {
                        "clientIp": "198.51.100.11",
                        "method": "GET",
                        "uri": uri,
                        "querystring": querystring,
                        "headers": {"host": [{"key": "Host", "value": "portal.example.ca"}]},
                        "origin": origin,
                    },
                }
            }
        ]
    }


S3 = {
    "s3": {
        "domainName": "pages.s3.ca-central-1.amazonaws.com",
        "path": "",
        "authMethod": "origin-access-control",
        "region": "ca-central-1",
        "customHeaders": {},
    }
}
ALB = {"custom": {"domainName": "origin.portal.example.ca", "port": 443, "protocol": "https",
                  "path": "", "sslProtocols": ["TLSv1.2"], "readTimeout": 30,
                  "keepaliveTimeout": 5, "customHeaders": {}}}  # fmt: skip


def test_failed_over_deep_path_asks_the_bucket_for_the_page() -> None:
    request = failover_origin.handler(event("/apply/step-2", S3))
    assert (request["uri"], request["querystring"]) == (HIGH_DEMAND_PAGE, "")


def test_requests_to_the_portal_pass_untouched() -> None:
    request = failover_origin.handler(event("/apply/step-2", ALB))
    assert (request["uri"], request["querystring"]) == ("/apply/step-2", "lang=fr")


def test_the_page_itself_is_asked_for_as_is() -> None:
    request = failover_origin.handler(event("/high-demand/index.html", S3, ""))
    assert request["uri"] == "/high-demand/index.html"
