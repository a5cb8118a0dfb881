"""Peak arithmetic: units, rounding, and that more users never need fewer instances."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planning.capacity import (
    WarmThroughput,
    instances_for,
    max_with_zone_lost,
    origin_requests_per_s,
    peak_check,
    room_item_reads,
    room_warm_throughput,
)
from planning.settings import Settings, load_stack_settings
from tests.helpers import settings_with

PROD = load_stack_settings("prod")


def capacity(**changes: Any) -> Settings:
    """Prod with `changes` to its capacity section (no validation: pure arithmetic)."""
    return PROD.model_copy(update={"capacity": PROD.capacity.model_copy(update=changes)})


def test_2016_night_in_origin_requests() -> None:
    # 200,000 users x 0.05 req/s x 40 % reaching the origin = 4,000 req/s.
    assert origin_requests_per_s(200_000, capacity(public_page_pct=0)) == pytest.approx(4000)


def test_public_pages_reach_the_origin_once_per_cache_and_ttl() -> None:
    """20 % of requests are public pages kept 60 s: 500 keys from one Origin Shield reach the
    origin 8.3 times a second however many people read them; without the shield, each of the
    13 regional edge caches asks; with no-store (or a TTL of 0) all of them do."""
    pages = {"public_page_pct": 20, "public_page_ttl_s": 60, "public_page_urls": 500}
    shielded = capacity(**pages).model_copy(
        update={"edge": PROD.edge.model_copy(update={"origin_shield_region": "us-east-1"})}
    )
    unshielded = capacity(**pages).model_copy(
        update={"edge": PROD.edge.model_copy(update={"origin_shield_region": None})}
    )
    dynamic = 340_000 * 0.05 * 0.2
    assert origin_requests_per_s(340_000, shielded) == pytest.approx(dynamic + 500 / 60)
    assert origin_requests_per_s(340_000, unshielded) == pytest.approx(dynamic + 500 * 13 / 60)
    assert origin_requests_per_s(340_000, shielded, edge_cache=False) == pytest.approx(6_800)
    assert origin_requests_per_s(340_000, capacity(**{**pages, "public_page_ttl_s": 0})) == (
        pytest.approx(6_800)
    )
    assert origin_requests_per_s(10, shielded) == pytest.approx(10 * 0.05 * 0.4), "few readers"


def test_instances_round_up() -> None:
    assert instances_for(301, 150) == 3
    assert instances_for(300, 150) == 2


def test_zone_loss_keeps_the_surviving_share() -> None:
    assert max_with_zone_lost(120, 3) == 80
    assert max_with_zone_lost(4, 2) == 2


def test_prod_carries_twenty_times_baseline_with_a_zone_lost(prod) -> None:
    check = peak_check(prod)
    assert check.peak_users == 340_000
    assert check.holds, check


@given(
    users=st.integers(1, 10_000_000),
    extra=st.integers(0, 1_000_000),
    per_user=st.floats(0.001, 2),
    offload=st.floats(0, 49),
    public=st.floats(0, 49),
    ttl=st.integers(0, 600),
    per_instance=st.floats(1, 10_000),
)
def test_more_users_never_need_fewer_instances(
    users, extra, per_user, offload, public, ttl, per_instance
):
    s = capacity(
        requests_per_user_per_s=per_user,
        cdn_offload_pct=offload,
        public_page_pct=public,
        public_page_ttl_s=ttl,
    )
    fewer = instances_for(origin_requests_per_s(users, s), per_instance)
    more = instances_for(origin_requests_per_s(users + extra, s), per_instance)
    assert more >= fewer >= 1


@given(max_size=st.integers(1, 5000), zones=st.integers(2, 6))
def test_zone_loss_never_exceeds_max(max_size: int, zones: int) -> None:
    survivors = max_with_zone_lost(max_size, zones)
    assert 0 <= survivors <= max_size
    assert survivors >= max_size // 2 - 1 or zones == 2


def test_room_is_warmed_between_a_new_tables_rate_and_the_quota(prod_config) -> None:
    small = settings_with(prod_config, admission__design_joins_per_s=100).admission
    assert room_warm_throughput(small) == WarmThroughput(writes_per_s=4_000, reads_per_s=12_000)
    raised = settings_with(
        prod_config,
        admission__design_joins_per_s=20_000,
        admission__table_quota_units_per_s=80_000,
    ).admission
    # 20,000 joins x 4 writes (the address counter, count, visitor, place); 4 reads a poll.
    assert room_warm_throughput(raised) == WarmThroughput(writes_per_s=80_000, reads_per_s=60_000)


def test_the_room_takes_its_capacity_from_the_fleets_figures(prod_config) -> None:
    from planning.capacity import admit_rate_per_s, people_per_instance, room_tunables

    prod = settings_with(prod_config)
    # 150 req/s per instance / (0.05 req/s per user x 40 % reaching the origin) = 7,500.
    assert people_per_instance(prod) == 7500
    # 120 instances x 7,500 people / 1,200 s sessions x 3 to catch up = 2,250 per second, at
    # most 2,000 (the planned 340,000 alone would give 850: the fleet's max holds more).
    assert admit_rate_per_s(prod) == 2000
    env = room_tunables(prod)
    assert (env["FG_SESSIONS_PER_INSTANCE"], env["FG_MAX_ADMIT_PER_S"]) == ("7500", "2000")
    small = settings_with(prod_config, fleet__max_size=30)
    # 30 x 7,500 = 225,000 < the planned 340,000: 340,000 / 1,200 x 3 = 850.
    assert admit_rate_per_s(small) == 850
    chosen = settings_with(
        prod_config, admission__sessions_per_instance=5000, admission__max_admit_per_s=900
    )
    assert (people_per_instance(chosen), admit_rate_per_s(chosen)) == (5000, 900)


@pytest.mark.parametrize("override", [100, 3749, 7501])
def test_an_override_far_from_the_fleets_figures_is_refused(prod_config, override) -> None:
    from planning.settings import SettingsError

    with pytest.raises(SettingsError) as error:
        settings_with(prod_config, admission__sessions_per_instance=override)
    message = str(error.value)
    assert "admission.sessions_per_instance: must lie between 3,750 and 7,500" in message
    assert f"(got {override})" in message


def test_the_room_must_be_able_to_reopen_at_the_scaling_target(prod_config) -> None:
    from planning.settings import SettingsError

    with pytest.raises(SettingsError) as error:
        settings_with(prod_config, admission__open_below_load_pct=60)
    assert "admission.open_below_load_pct: must be at least the fleet's scaling target, " in str(
        error.value
    )
    assert "66.7 %" in str(error.value) and "(got 60)" in str(error.value)
    lower_target = settings_with(
        prod_config, admission__open_below_load_pct=60, fleet__scaling__requests_per_target=5400
    )
    assert lower_target.fleet.scaling_target_pct == 60


def test_the_queue_api_is_sized_for_the_planned_crowd(prod_config) -> None:
    from functions.admission.room import POLL_MAX_S as PAGE_POLL_MAX_S
    from planning.capacity import (
        POLL_MAX_S,
        queue_api_capacity,
        queue_api_design,
        room_tunables,
    )

    prod = settings_with(prod_config, admission__status_concurrency=None)  # derived
    design = queue_api_design(prod)
    # 340,000 people joining within 2 minutes, and all of them polling once a minute.
    assert round(design.joins_per_s) == 2833 and round(design.polls_per_s) == 5667
    assert (design.join_concurrency, design.status_concurrency, design.reserved) == (142, 189, 334)
    capacity = queue_api_capacity(prod)
    assert capacity.joins_per_s >= design.joins_per_s
    assert capacity.polls_per_s >= design.polls_per_s
    assert capacity.api_per_s >= design.joins_per_s + design.polls_per_s
    assert room_tunables(prod)["FG_POLLS_PER_S"] == f"{capacity.polls_per_s:.0f}"
    assert POLL_MAX_S == PAGE_POLL_MAX_S, "the page's slowest poll sizes the status function"


def test_the_room_item_stays_within_one_partition_at_the_design_point(prod) -> None:
    """Read by every join and poll, prod's design point puts 4,250 units/s on one item (3,000
    is a partition's most); one read a second per container keeps it at 166."""
    assert room_item_reads(prod, cache_s=0).units_per_s == pytest.approx(4_250)
    hot = room_item_reads(prod)
    assert hot.reads_per_s == 142 + 300 and hot.units_per_s < 3_000  # prod sets status 300
    assert room_item_reads(prod, containers=10_000).reads_per_s == hot.uncached_reads_per_s


def test_the_default_table_quota_is_dynamodbs_40000_units(prod_config) -> None:
    """Catches a default quota that is not AWS's: 40,000 read and 40,000 write request units
    per on-demand table (DynamoDB developer guide, "Quotas in Amazon DynamoDB", throughput
    default quotas, https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html).
    20,000 joins/s x 4 writes would be 80,000: the table is warmed to the quota, no more."""
    admission = settings_with(prod_config, admission__design_joins_per_s=20_000).admission
    assert admission.table_quota_units_per_s == 40_000
    assert room_warm_throughput(admission) == WarmThroughput(
        writes_per_s=40_000, reads_per_s=40_000
    )
