"""Lambda@Edge, origin request, on every behaviour the portal origin group serves.

When the ALB answers a failover status (or cannot be reached), CloudFront sends the same request
to the secondary origin, the pages bucket, and runs origin-request triggers again for it
(CloudFront guide, "Use origin failover with Lambda@Edge functions"). The bucket holds only
/high-demand/, so S3 would answer the viewer's deep path with its XML AccessDenied. This trigger
points every request bound for S3 at the page instead; requests to the ALB pass untouched.

A viewer-response function cannot do this: CloudFront does not run viewer-response functions
when the origin's status is 400 or higher. Lambda@Edge: no environment variables, no layers,
x86_64, us-east-1, a numbered version; this file imports nothing but the standard library.
"""

from __future__ import annotations

from typing import Any

PAGE = "/high-demand/index.html"


def handler(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    request = event["Records"][0]["cf"]["request"]
    if "s3" in request.get("origin", {}) and not request["uri"].startswith("/high-demand/"):
        request["uri"] = PAGE
        request["querystring"] = ""
    return request
