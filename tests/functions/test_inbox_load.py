"""The inbox under load on moto's server (127.0.0.1): nothing lost, nothing acted on twice,
every receipt resolvable. `make bench` runs the same with 5,000 submissions and prints figures."""

from __future__ import annotations

import pytest

from tests.functions import inbox_load
from tests.moto_server import atomic_item_writes


@pytest.mark.long
def test_concurrent_submissions_with_duplicates_and_a_killed_consumer_lose_nothing(
    aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    atomic_item_writes(monkeypatch.setattr)  # DynamoDB's per-item atomicity, which moto lacks
    report = inbox_load.run(aws, n=250, consumers=4, kill_every=23)
    assert report.unique < report.submissions, "the run repeats some keys"
    assert report.left_waiting == report.dead_letters == 0, "drained within the bound"
    assert set(report.office.effects) == {t.split(".")[0] for t in report.receipts}, "0 lost"
    # Asked once per submission, not only acted on once: the killed consumer dies before the
    # back office takes its submission, so no post is repeated, duplicates included.
    assert set(report.office.calls.values()) == {1}, "0 processed twice"
    assert report.redelivered > 0, "a killed consumer's batch came back"
    assert set(report.receipts.values()) == {"done"}, "every receipt resolvable"
    assert report.uploads > 0 and report.uploads_left == 0, "each upload acted on, then deleted"
