"""Floodgate's policy pack: every rule, in the three groups docs/policy-pack.md lists."""

from __future__ import annotations

from policies import apply_time, baseline, readiness
from policies.rule import ResourceRule, StackRule

PACK_NAME = "floodgate"
RULES: list[ResourceRule | StackRule] = [*apply_time.RULES, *readiness.RULES, *baseline.RULES]
