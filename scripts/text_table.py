"""Plain-text output for operator commands, within WIDTH columns: tables aligned (split into
blocks of columns when too wide, a free-text last column wrapped under itself), prose lines
wrapped with a hanging indent."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence

WIDTH = 100
"""The widest line a command prints (a terminal, a CI log, a PR comment's code block)."""


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """One line per row, every column but the last padded to its widest cell, two spaces
    between columns, no trailing spaces (the last column holds long free text)."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join(
            [*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]]
        ).rstrip()
        for row in rows
    ]


FREE_TEXT_ROOM = 20
"""A free-text last column stays beside the others while this much of the line is left."""


def fitted(
    rows: Sequence[Sequence[str]], keep: int = 1, width: int = WIDTH, free_text: bool = False
) -> list[str]:
    """`aligned` within `width`: columns in blocks that fit, each repeating the first `keep`
    (the row's name), blocks apart by a blank line; with `free_text`, the last column stays in
    the last block and wraps under itself. The first row is the header."""
    if not rows:
        return []
    columns = len(rows[0])
    widths = [max(len(row[i]) for row in rows) for i in range(columns)]
    blocks: list[list[int]] = []
    block = list(range(keep))
    for i in range(keep, columns):
        candidate = [*block, i]
        wide = FREE_TEXT_ROOM if free_text and i == columns - 1 else widths[i]
        if len(block) > keep and _span(candidate[:-1], widths) + 2 + wide > width:
            blocks.append(block)
            candidate = [*range(keep), i]
        block = candidate
    blocks.append(block)
    lines: list[str] = []
    for number, block in enumerate(blocks):
        if number:
            lines.append("")
        for row in rows:
            lines += _wrapped_row([row[i] for i in block], [widths[i] for i in block], width)
    return lines


def _span(block: list[int], widths: list[int]) -> int:
    return sum(widths[i] for i in block) + 2 * (len(block) - 1)


def _wrapped_row(cells: list[str], widths: list[int], width: int) -> list[str]:
    head = "  ".join(cell.ljust(w) for cell, w in zip(cells[:-1], widths, strict=False))
    indent = len(head) + 2 if head else 0
    room = max(width - indent, 20)
    tail = textwrap.wrap(cells[-1], room, break_on_hyphens=False, break_long_words=False) or [""]
    first = f"{head}  {tail[0]}" if head else tail[0]
    return [first.rstrip(), *(" " * indent + more for more in tail[1:])]


def wrapped(line: str, indent: int | None = None, width: int = WIDTH) -> list[str]:
    """`line` within `width`, continuation lines indented `indent` (default: the line's own
    indent plus four)."""
    if len(line) <= width:
        return [line]
    lead = len(line) - len(line.lstrip())
    hang = " " * (lead + 4 if indent is None else indent)
    return textwrap.wrap(
        line[lead:],
        width,
        initial_indent=line[:lead],
        subsequent_indent=hang,
        break_on_hyphens=False,
        break_long_words=False,
    ) or [line]


def say(lines: Iterable[str], prefix: str = "", indent: int | None = None) -> None:
    """Print each of `lines` after `prefix` (blank lines stay blank), `wrapped` at WIDTH."""
    for line in lines:
        print("\n".join(wrapped(f"{prefix}{line}", indent) if line else [""]))
