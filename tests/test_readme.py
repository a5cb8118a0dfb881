"""The README is the front door: its contents list its sections, its outputs table every stack
output; docs/layout.md is the tree: every tracked module is named in it, and every file it
names exists."""

from __future__ import annotations

import re
import subprocess

from scripts.offline_cloud import ROOT

# Named by what they are, not one by one: package markers, tests (their folders are), pages.
UNNAMED = re.compile(r"(^|/)__init__\.py$|^tests/.+/|^functions/pages/.+\.html$")


def layout() -> str:
    text = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    return text.split("```\n", 1)[1].split("```", 1)[0]


def tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.splitlines()


def test_every_top_level_entry_has_a_line() -> None:
    starts = {line.split("/")[0].split()[0] for line in layout().splitlines() if line[:1].strip()}
    tops = {path.split("/")[0] for path in tracked()}
    missing = tops - starts - {".gitignore", "README.md", "requirements.lock", "package-lock.json"}
    assert not missing, f"docs/layout.md has no line for {sorted(missing)}"


def test_every_module_is_named() -> None:
    text = layout()
    words = set(re.findall(r"[\w.-]+", text))
    missing = [
        path
        for path in tracked()
        if path.count("/") >= 1
        and not path.startswith((".github/", "tests/", "stacks/Pulumi."))
        and not UNNAMED.search(path)
        and path.rsplit("/", 1)[1] not in words
        and path.rsplit("/", 1)[1].removesuffix(".py") not in words
    ]
    assert not missing, f"docs/layout.md does not name {missing}"


def test_every_file_named_exists() -> None:
    names = {path.rsplit("/", 1)[-1] for path in tracked()}
    named = set(re.findall(r"[\w-]+\.(?:py|js|mjs|md|yaml|yml|ics|txt|sh|json)\b", layout()))
    assert named - {"Pulumi.<stack>.yaml"} <= names, sorted(named - names)


def test_the_outputs_table_names_every_stack_output_once() -> None:
    from tests.components.test_portal import EXPECTED_OUTPUTS

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("**Stack outputs**", 1)[1].split("\n\n", 2)[1]
    named = [line.split("`")[1] for line in table.splitlines() if line.startswith("| `")]
    assert sorted(named) == sorted(EXPECTED_OUTPUTS)


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but hyphens dropped, spaces to
    hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower().replace("`", "")).replace(" ", "-")


def test_the_contents_link_every_section_in_order() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    contents = text.split("## Contents\n", 1)[1].split("\n## ", 1)[0]
    links = re.findall(r"^- \[(.+?)\]\(#([\w-]+)\)", contents, flags=re.M)
    sections = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert [title for title, _ in links] == [s for s in sections if s != "Contents"]
    assert all(anchor == _anchor(title) for title, anchor in links)


def test_every_link_between_the_pages_reaches_a_file_and_its_heading() -> None:
    """README and docs/ link each other by file and heading: a moved section breaks a link."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", linked.read_text(encoding="utf-8"), re.M)
                if anchor not in {_anchor(h) for h in headings}:
                    broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []
