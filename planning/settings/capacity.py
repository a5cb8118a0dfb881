"""The `capacity` section: the crowd to plan for."""

from __future__ import annotations

from typing import Self

from pydantic import (
    Field,
    model_validator,
)

from planning.settings.base import _at, _Model


class CapacitySettings(_Model):
    """What the stack must carry; used to check that the fleet's max holds the planned peak."""

    baseline_users: int = Field(ge=1)
    """Concurrent users on an ordinary evening."""
    peak_multiple: float = Field(default=20.0, ge=1)
    """Planned surge as a multiple of baseline (2016: 12x observed; plan for 20x)."""
    requests_per_user_per_s: float = Field(default=0.05, gt=0)
    """Requests one active user sends per second, page assets included."""
    cdn_offload_pct: float = Field(default=60.0, ge=0, lt=100)
    """Share of requests that are static assets (`edge.static_path_patterns`, cached for a day):
    CloudFront answers them from cache."""
    public_page_pct: float = Field(default=0.0, ge=0, lt=100)
    """Share of requests that are public pages (`edge.public_page_patterns`), which the edge
    serves from cache while the origin's max-age lasts: at most `public_page_urls` x the
    caches that ask the origin / `public_page_ttl_s` reach it a second."""
    public_page_ttl_s: int = Field(default=0, ge=0)
    """The max-age (s) the origin gives its public pages, as the plan assumes it (0: not
    cached, every public page reaches the origin). Check it with `curl -sI`; the rehearsal's
    `edge-uncached` scenario plays a night on which the origin sends `no-store`."""
    public_page_urls: int = Field(default=500, ge=1)
    """Distinct public-page cache keys asked for on the night (paths x languages)."""

    @property
    def edge_share_pct(self) -> float:
        """Share of one more person's requests the edge answers: assets, and public pages
        when the origin lets the edge cache them."""
        return self.cdn_offload_pct + (self.public_page_pct if self.public_page_ttl_s > 0 else 0)

    @model_validator(mode="after")
    def _shares(self) -> Self:
        if self.cdn_offload_pct + self.public_page_pct >= 100:
            raise _at(
                "public_page_pct",
                self.public_page_pct,
                f"with cdn_offload_pct {self.cdn_offload_pct:g} must leave some requests for "
                "the origin (sum below 100)",
            )
        return self
