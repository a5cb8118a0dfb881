"""The inbox section: off by default, each limit AWS sets on its queue, consumer and bodies."""

from __future__ import annotations

import pytest

from planning.settings import SettingsError
from tests.helpers import settings_with

BACK_OFFICE = "https://back-office.example.ca/submissions"


def test_the_inbox_is_off_unless_it_names_paths(prod_config) -> None:
    assert not settings_with(prod_config, inbox__path_patterns=[]).inbox.enabled


def test_an_inbox_path_must_be_a_write_path(prod_config) -> None:
    with pytest.raises(SettingsError, match=r"inbox\.path_patterns: must each be one of edge"):
        settings_with(
            prod_config, inbox__path_patterns=["/upload/*"], inbox__back_office_url=BACK_OFFICE
        )


def test_an_inbox_needs_a_back_office_to_hand_submissions_to(prod_config) -> None:
    with pytest.raises(SettingsError, match=r"inbox\.back_office_url: is required"):
        settings_with(prod_config, inbox__path_patterns=["/submit/*"], inbox__back_office_url=None)
    with pytest.raises(SettingsError, match="must be an https:// URL"):
        settings_with(prod_config, inbox__back_office_url="http://back-office.example.ca/")


def test_the_dead_letter_queue_keeps_longer_than_the_queue(prod_config) -> None:
    """A standard queue's DLQ keeps each message's original enqueue time (SQS developer
    guide, "Using dead-letter queues"): equal retention expires it on arrival."""
    with pytest.raises(SettingsError, match=r"inbox\.dlq_retention_s: must be longer"):
        settings_with(prod_config, inbox__retention_s=86_400, inbox__dlq_retention_s=86_400)
    settings_with(prod_config, inbox__retention_s=86_400, inbox__dlq_retention_s=86_401)


def test_an_inline_body_fits_sqs_s_one_mebibyte_message_with_its_attributes(prod_config) -> None:
    """SQS quotas: a message, body and attributes, is at most 1,048,576 bytes."""
    settings_with(prod_config, inbox__inline_body_max_bytes=1_048_576 - 4_096)
    with pytest.raises(SettingsError, match=r"inbox\.inline_body_max_bytes: must be at most"):
        settings_with(prod_config, inbox__inline_body_max_bytes=1_048_576 - 4_095)


def test_the_drain_rate_sizes_the_consumer_within_lambda_s_event_source(prod_config) -> None:
    """Lambda developer guide, SQS event source: MaximumConcurrency is 2 to 1,000."""
    s = settings_with(prod_config, inbox__drain_per_s=0.1, inbox__processing_s=2.0)
    assert s.inbox.consumer_concurrency == 2
    s = settings_with(prod_config, inbox__drain_per_s=500, inbox__processing_s=2.0)
    assert s.inbox.consumer_concurrency == 1_000
    with pytest.raises(SettingsError, match=r"inbox\.drain_per_s: needs 1001 consumers"):
        settings_with(prod_config, inbox__drain_per_s=500.5, inbox__processing_s=2.0)


def test_the_visibility_timeout_is_six_times_the_consumer_s_timeout(prod_config) -> None:
    """Lambda developer guide: set the queue's visibility timeout to at least six times the
    function's timeout; the function's timeout is at most 900 s."""
    s = settings_with(prod_config, inbox__processing_s=2.0).inbox
    assert (s.consumer_timeout_s, s.visibility_timeout_s) == (30, 180)
    settings_with(prod_config, inbox__processing_s=60)
    with pytest.raises(SettingsError, match=r"inbox\.processing_s: at most 60"):
        settings_with(prod_config, inbox__processing_s=60.5)


def test_an_upload_fits_one_s3_put_and_is_no_smaller_than_the_inline_limit(prod_config) -> None:
    """S3 User Guide, "Uploading objects": one PutObject uploads at most 5 GiB."""
    most = 5 * 1_073_741_824
    assert settings_with(prod_config, inbox__body_max_bytes=most).inbox.uploads
    with pytest.raises(SettingsError, match=r"inbox\.body_max_bytes: must be at most 5368709120"):
        settings_with(prod_config, inbox__body_max_bytes=most + 1)
    with pytest.raises(SettingsError, match=r"inbox\.body_max_bytes: must be at least inline"):
        settings_with(prod_config, inbox__body_max_bytes=262_143)
    equal = settings_with(prod_config, inbox__body_max_bytes=262_144).inbox
    assert equal.enabled and not equal.uploads, "the inline limit itself: no uploads, no bucket"


def test_an_uploaded_body_outlives_every_message_that_can_name_it(prod_config) -> None:
    inbox = settings_with(prod_config, inbox__dlq_retention_s=1_209_600).inbox
    assert inbox.upload_expiry_days * 86_400 > inbox.dlq_retention_s > inbox.retention_s
