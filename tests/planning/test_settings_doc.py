"""The settings reference: every key documented, and docs/settings.md generated from the model."""

from __future__ import annotations

from planning.settings import LoadBalancerSettings, Settings
from scripts.settings_doc import DOC, fields, main, render


def test_every_setting_has_a_description() -> None:
    """Each field's docstring is its description (use_attribute_docstrings): a new field with
    none fails here, and so does a docstring left under the wrong field."""
    keys = dict(fields(Settings))
    assert len(keys) > 120 and "prescale.stage_minutes" in keys
    undocumented = [key for key, field in keys.items() if not (field.description or "").strip()]
    assert undocumented == []
    waiting = keys["admission.waiting_alarm_threshold"].description or ""
    assert waiting.startswith("Alarm when this many people are waiting")


def test_the_reference_in_docs_is_up_to_date(capsys) -> None:
    assert DOC.read_text(encoding="utf-8") == render(), "stale: run `make docs`"
    assert main(["--check"]) == 0


def test_the_reference_shows_type_default_bounds_and_choices() -> None:
    text = render()
    row = next(line for line in text.splitlines() if line.startswith("| `prescale.stage_minutes`"))
    assert "| int | `30` | >= 15; <= 1,440 |" in row
    row = next(line for line in text.splitlines() if line.startswith("| `network.nat_gateways`"))
    assert "`one`, `per_zone`" in row
    row = next(
        line
        for line in text.splitlines()
        if line.startswith("| `load_balancer.origin_domain_name`")
    )
    assert "| required |" in row
    assert (LoadBalancerSettings.__doc__ or "?") in text
