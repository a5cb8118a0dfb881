"""YAML files as the Pulumi CLI reads them, with errors that name the file and the line.

Stack files and events.yaml go through `load_yaml`: text that is not UTF-8, a syntax error or a
tab, a duplicate key (the Pulumi CLI refuses one, so must a plan) and a value YAML cannot build
(such as the date 2028-02-30) are refused with the file, the line and what is wrong, never a
traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node


class YamlFileError(ValueError):
    """A YAML file that cannot be read; the message names the file and, where known, the line."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reports unbuildable values at their line."""

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first on line {seen[key]})",
                        key_node.start_mark,
                    )
                seen[key] = line
        return super().construct_mapping(node, deep=deep)  # type: ignore[arg-type]

    def construct_yaml_timestamp(self, node: Node) -> Any:
        try:
            return super().construct_yaml_timestamp(node)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ConstructorError(
                None, None, f"{node.value!r} is not a valid date or time ({exc})", node.start_mark
            ) from None


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _StrictLoader.construct_yaml_timestamp)
_StrictLoader.add_constructor("tag:yaml.org,2002:map", _StrictLoader.construct_mapping)


def load_yaml(path: Path) -> Any:
    """The document in `path` (None when empty); YamlFileError naming the file and line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise YamlFileError(f"{path}: no such file") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlFileError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = exc.problem or exc.context or "invalid YAML"
        if "\t" in text and "found character '\\t'" in str(exc):
            problem = "a tab; YAML indents with spaces only"
        raise YamlFileError(f"{path}: {where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise YamlFileError(f"{path}: invalid YAML ({exc})") from None
