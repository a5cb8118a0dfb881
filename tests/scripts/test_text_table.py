"""Tables and lines within 100 columns: blocks of columns, a free-text column wrapped."""

from __future__ import annotations

from scripts.text_table import WIDTH, fitted, wrapped


def test_a_wide_table_splits_into_blocks_that_each_repeat_the_row_names() -> None:
    header = ("scenario", "policy", *(f"measure {i}" for i in range(14)))
    rows = [header, ("event", "configured", *(f"{i:,}" for i in range(14)))]
    lines = fitted(rows, keep=2)
    blocks = "\n".join(lines).split("\n\n")
    assert len(blocks) > 1 and all(len(line) <= WIDTH for line in lines)
    for block in blocks:
        head, row = block.splitlines()
        assert head.split()[:2] == ["scenario", "policy"] and row.split()[:2] == [
            "event",
            "configured",
        ]
    cells = " ".join(" ".join(b.splitlines()[1].split()[2:]) for b in blocks).split()
    assert cells == [f"{i:,}" for i in range(14)]  # every cell once, in order


def test_free_text_wraps_under_its_own_column_and_a_line_under_its_indent() -> None:
    rows = [("rule", "verdict", "message"), ("r", "n/a", "because " * 30)]
    first, *more = fitted(rows, free_text=True)[1:]
    column = first.index("because")
    assert more and all(line[:column].isspace() and len(line) <= WIDTH for line in more)
    line = "  waiting room     " + "word " * 40
    out = wrapped(line.rstrip(), 19)
    assert out[0].startswith("  waiting room     word") and all(len(w) <= WIDTH for w in out)
    assert all(w.startswith(" " * 19 + "word") for w in out[1:])
    assert wrapped("short") == ["short"]
