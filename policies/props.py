"""Reading engine property bags (camelCase, nested mappings and lists) without KeyErrors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def get(props: Mapping[str, Any] | None, path: str, default: Any = None) -> Any:
    """`get(p, "warmPool.maxGroupPreparedCapacity")`: None (or `default`) where a step is absent."""
    node: Any = props
    for step in path.split("."):
        if not isinstance(node, Mapping) or step not in node:
            return default
        node = node[step]
    return default if node is None else node


def as_list(value: Any) -> list[Any]:
    """A property that may be a list, one value or absent, as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def policy_document(value: Any) -> dict[str, Any]:
    """An IAM/KMS policy property (JSON text or a mapping) as a mapping; {} when unreadable."""
    if isinstance(value, Mapping):
        return dict(value)
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in as_list(document.get("Statement")) if isinstance(s, Mapping)]
