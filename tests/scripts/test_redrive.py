"""`scripts/redrive.py` against moto, with SQS's message move task as AWS documents it
(functions/inbox/redrive.MoveTasks: moto has none)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from moto import mock_aws

from functions.inbox.redrive import MoveTasks
from scripts import redrive
from tests.functions.inbox_cloud import create_inbox


@pytest.fixture
def cloud():
    with mock_aws():
        inbox = create_inbox(name="floodgate-prod-inbox")
        yield inbox, MoveTasks(inbox.sqs)


def test_a_dry_run_moves_nothing_and_says_what_it_would(cloud, capsys) -> None:
    inbox, sqs = cloud
    sqs.send_message(QueueUrl=inbox.dlq_url, MessageBody="kept")
    code = redrive.main(["--stack", "prod", "--dlq-url", inbox.dlq_url, "--dry-run"], sqs=sqs)
    assert code == 0
    assert "dry run: would move 1 submissions" in capsys.readouterr().out
    assert sqs.tasks == []


def test_a_redrive_starts_once_and_repeats_safely(cloud, capsys, tmp_path: Path) -> None:
    inbox, sqs = cloud
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"inbox_dlq_url": inbox.dlq_url}))
    for n in range(3):
        sqs.send_message(QueueUrl=inbox.dlq_url, MessageBody=str(n))
    args = ["--stack", "prod", "--outputs", str(outputs), "--rate", "10"]
    assert redrive.main(args, sqs=sqs) == 0
    assert "moving 3 submissions back to the inbox (task task-1)" in capsys.readouterr().out
    assert redrive.main(args, sqs=sqs) == 0
    assert "already running (task-1); nothing started" in capsys.readouterr().out
    sqs.advance(1.0)
    assert redrive.main(args, sqs=sqs) == 0
    assert "empty: nothing to move" in capsys.readouterr().out
    assert inbox.depth(inbox.queue_url) == 3


def test_aws_refusing_the_task_is_one_line_and_exit_2(cloud, capsys) -> None:
    inbox, sqs = cloud
    sqs.send_message(QueueUrl=inbox.queue_url, MessageBody="x")
    assert redrive.main(["--stack", "prod", "--dlq-url", inbox.queue_url], sqs=sqs) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: AWS refused the redrive") and "configured as a DLQ" in line
