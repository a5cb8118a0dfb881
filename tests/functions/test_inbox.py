"""The inbox's receipts, reference consumer and redrive, against moto."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from moto import mock_aws

from functions.inbox import handlers
from functions.inbox.consumer import Submission, Verdict, event_record
from functions.inbox.receipts import receipt_id, sign, tag, untag, verify
from functions.inbox.redrive import MoveTasks, redrive
from tests.functions.inbox_cloud import (
    LEASE_S,
    SECRET,
    T0,
    UPLOADS,
    BackOffice,
    Inbox,
    create_inbox,
)
from tests.functions.inbox_load import edge, post_event


@pytest.fixture
def inbox(request) -> Iterator[Inbox]:
    with mock_aws():
        yield create_inbox(name=f"inbox-{abs(hash(request.node.name)) % 10**8}")


def test_the_same_key_on_the_same_path_is_the_same_receipt() -> None:
    one = receipt_id("/submit/apply", "key-0001-abcd", "req-1")
    assert one == receipt_id("/submit/apply", "key-0001-abcd", "req-2")
    assert one != receipt_id("/submit/renew", "key-0001-abcd", "req-1")
    assert receipt_id("/submit/apply", None, "req-1") != receipt_id("/submit/apply", None, "req-2")


def test_a_tag_proves_the_edge_made_the_receipt() -> None:
    tagged = tag("ab" * 16, SECRET)
    assert untag(tagged, ["old", SECRET]) == "ab" * 16
    assert untag(tagged, ["other"]) is None
    assert untag("ab" * 16, [SECRET]) is None


def test_a_receipt_verifies_only_with_its_secret_and_unaltered() -> None:
    token = sign("ab" * 16, int(T0), SECRET)
    assert verify(token, ["old", SECRET]) == ("ab" * 16, int(T0))
    assert verify(token, ["other"]) is None
    assert verify(token.replace(str(int(T0)), str(int(T0) - 1)), [SECRET]) is None
    assert verify("ab" * 16, [SECRET]) is None


def test_each_submission_reaches_the_back_office_once_and_is_done(inbox: Inbox) -> None:
    office = BackOffice()
    consumer = inbox.consumer(office)
    for n in range(12):
        inbox.send(f"{n:032x}", body=json.dumps({"n": n}))
    while inbox.poll(consumer)[0]:
        pass
    assert office.effects == {f"{n:032x}": 1 for n in range(12)}
    assert all(inbox.status(f"{n:032x}") == "done" for n in range(12))
    assert inbox.depth(inbox.queue_url) == inbox.depth(inbox.dlq_url) == 0


def test_a_duplicate_post_is_deleted_without_a_second_call(inbox: Inbox) -> None:
    office = BackOffice()
    consumer = inbox.consumer(office)
    inbox.send("c" * 32)
    inbox.poll(consumer)
    inbox.send("c" * 32)  # the client posted again with the same key
    inbox.poll(consumer)
    assert office.calls["c" * 32] == 1
    assert inbox.depth(inbox.queue_url) == 0


def test_a_back_office_outage_is_retried_until_it_takes_the_submission(inbox: Inbox) -> None:
    office = BackOffice(answers=["retry", "retry"])
    consumer = inbox.consumer(office)
    inbox.send("d" * 32)
    assert inbox.poll(consumer) == (1, 1)
    assert inbox.status("d" * 32) == "received"  # the lease was given back
    inbox.expire_visibility()
    assert inbox.poll(consumer) == (1, 1)
    inbox.expire_visibility()
    assert inbox.poll(consumer) == (1, 0)
    assert office.effects["d" * 32] == 1 and inbox.status("d" * 32) == "done"


def test_a_refused_submission_is_failed_and_kept_in_the_dead_letter_queue(inbox: Inbox) -> None:
    consumer = inbox.consumer(BackOffice(answers=["refused"]))
    inbox.send("e" * 32, body="bad form")
    inbox.poll(consumer)
    record = inbox.receipts.get("e" * 32)
    assert record is not None and record.status == "failed" and record.public()["error"]
    kept = inbox.sqs.receive_message(QueueUrl=inbox.dlq_url, MessageAttributeNames=["All"])
    (message,) = kept["Messages"]
    assert message["Body"] == "bad form"
    assert message["MessageAttributes"]["failure"]["StringValue"] == "the back office refused it"


def test_a_consumer_killed_mid_batch_loses_nothing_and_acts_once(inbox: Inbox) -> None:
    """The consumer dies after claiming the third message of a batch of five (before it calls
    the back office): the two done stay done, the rest come back after the visibility timeout
    and the lease the dead one held has run out by then."""

    class Killed(BaseException):
        pass

    office = BackOffice()
    dying = inbox.consumer(office)

    class Dying:
        calls = 0

        def submit(self, submission: Submission) -> Verdict:
            self.calls += 1
            if self.calls == 3:
                raise Killed
            return office.submit(submission)

    dying.back_office = Dying()
    for n in range(5):
        inbox.send(f"{n:032x}")
    with pytest.raises(Killed):
        inbox.poll(dying)
    assert inbox.status(f"{2:032x}") == "processing"
    survivor = inbox.consumer(office)
    assert inbox.poll(survivor) == (0, 0)  # still invisible: nothing is delivered twice early
    inbox.expire_visibility()
    while inbox.poll(survivor)[0]:
        pass
    assert office.effects == {f"{n:032x}": 1 for n in range(5)}
    assert office.calls == office.effects  # the two done were not posted again


def test_a_consumer_killed_after_the_back_office_took_it_posts_again_with_the_same_key(
    inbox: Inbox,
) -> None:
    """The one window at-least-once delivery leaves: done at the back office, not yet marked.
    The second POST carries the same Idempotency-Key, so the effect is still once."""
    office = BackOffice()
    consumer = inbox.consumer(office)
    finish = inbox.receipts.finish

    def die_before_marking(*args, **kwargs):
        inbox.receipts.finish = finish
        raise SystemExit

    inbox.receipts.finish = die_before_marking
    inbox.send("f" * 32)
    with pytest.raises(SystemExit):
        inbox.poll(consumer)
    inbox.expire_visibility()
    inbox.poll(consumer)
    assert office.calls["f" * 32] == 2 and office.effects["f" * 32] == 1
    assert inbox.status("f" * 32) == "done"


def test_a_live_lease_sends_the_message_back_without_a_call(inbox: Inbox) -> None:
    inbox.receipts.claim("a" * 32, T0, inbox.now[0], LEASE_S)  # another consumer works on it
    office = BackOffice()
    inbox.send("a" * 32)
    assert inbox.poll(inbox.consumer(office)) == (1, 1)
    assert office.calls["a" * 32] == 0


def test_a_message_the_edge_did_not_make_is_kept_and_never_acted_on(inbox: Inbox) -> None:
    """Posted to the API around CloudFront: no receipt, or one without the edge's tag."""
    office = BackOffice()
    inbox.sqs.send_message(QueueUrl=inbox.queue_url, MessageBody="stray")
    forged = {"receipt": {"DataType": "String", "StringValue": tag("7" * 32, "guess")}}
    inbox.sqs.send_message(QueueUrl=inbox.queue_url, MessageBody="forged", MessageAttributes=forged)
    while inbox.poll(inbox.consumer(office))[0]:
        pass
    kept = inbox.sqs.receive_message(QueueUrl=inbox.dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in kept) == ["forged", "stray"]
    assert office.calls == {}


def test_an_upload_reaches_the_back_office_whole_and_is_deleted_once_done(inbox: Inbox) -> None:
    big = b"%PDF" + b"x" * 2_000_000
    inbox.upload("b" * 32, big, key="key-0001-abcd")
    office = BackOffice(answers=["retry"])
    assert inbox.poll(inbox.consumer(office)) == (1, 1)  # the back office failed: kept
    assert inbox.s3.head_object(Bucket=UPLOADS, Key="uploads/" + "b" * 32)["ContentLength"]
    inbox.expire_visibility()
    inbox.poll(inbox.consumer(office))
    assert office.bodies["b" * 32] == big and inbox.status("b" * 32) == "done"
    with pytest.raises(inbox.s3.exceptions.ClientError, match="404"):
        inbox.s3.head_object(Bucket=UPLOADS, Key="uploads/" + "b" * 32)


def test_an_upload_s_event_delivered_again_after_it_was_done_changes_nothing(
    inbox: Inbox,
) -> None:
    inbox.upload("c" * 32, b"body")
    (first,) = inbox.sqs.receive_message(QueueUrl=inbox.queue_url, VisibilityTimeout=0)["Messages"]
    inbox.sqs.send_message(QueueUrl=inbox.queue_url, MessageBody=first["Body"])  # at least once
    office = BackOffice()
    while inbox.poll(inbox.consumer(office))[0]:
        pass
    assert office.calls == {"c" * 32: 1}
    assert inbox.depth(inbox.dlq_url) == inbox.depth(inbox.queue_url) == 0


def test_s3_s_test_event_is_deleted_and_never_kept(inbox: Inbox) -> None:
    record = event_record(inbox.test_event, inbox.queue_arn)
    assert json.loads(record["body"])["Event"] == "s3:TestEvent"
    assert inbox.consumer(BackOffice()).handle(record) == "ignored"
    assert inbox.depth(inbox.dlq_url) == 0


def _forged(inbox: Inbox) -> None:
    inbox.upload("d" * 32, b"x", **{"floodgate-receipt": "d" * 32})


def _tag_of_another(inbox: Inbox) -> None:
    inbox.upload("d" * 32, b"x", **{"floodgate-receipt": tag("e" * 32, SECRET)})


def _bare(inbox: Inbox) -> None:
    inbox.s3.put_object(Bucket=UPLOADS, Key="uploads/" + "d" * 32, Body=b"x")


def _misnamed(inbox: Inbox) -> None:
    inbox.s3.put_object(Bucket=UPLOADS, Key="uploads/x", Body=b"x")


@pytest.mark.parametrize("write", [_forged, _tag_of_another, _bare, _misnamed])
def test_an_object_the_edge_did_not_write_is_kept_and_never_acted_on(
    inbox: Inbox, write: Callable[[Inbox], None]
) -> None:
    write(inbox)
    office = BackOffice()
    inbox.poll(inbox.consumer(office))
    assert office.calls == {}
    (kept,) = inbox.sqs.receive_message(QueueUrl=inbox.dlq_url, MessageAttributeNames=["All"])[
        "Messages"
    ]
    assert "s3" in json.loads(kept["Body"])["Records"][0]


def test_an_upload_gone_before_it_was_done_is_kept_for_an_operator(inbox: Inbox) -> None:
    inbox.upload("f" * 32, b"x")
    inbox.s3.delete_object(Bucket=UPLOADS, Key="uploads/" + "f" * 32)
    office = BackOffice()
    inbox.poll(inbox.consumer(office))
    (kept,) = inbox.sqs.receive_message(QueueUrl=inbox.dlq_url, MessageAttributeNames=["All"])[
        "Messages"
    ]
    assert kept["MessageAttributes"]["failure"]["StringValue"].startswith(
        "the uploaded body is gone"
    )
    assert office.calls == {}


def test_a_stack_without_uploads_keeps_an_upload_s_event(inbox: Inbox) -> None:
    inbox.upload("a" * 32, b"x")
    consumer = inbox.consumer(BackOffice())
    consumer.bucket = None
    inbox.poll(consumer)
    assert inbox.depth(inbox.dlq_url) == 1


def test_redrive_moves_the_dead_letters_back_once_and_repeats_safely(inbox: Inbox) -> None:
    sqs = MoveTasks(inbox.sqs)
    for n in range(3):
        sqs.send_message(QueueUrl=inbox.dlq_url, MessageBody=str(n))
    assert redrive(sqs, inbox.dlq_url, dry_run=True).action == "would start"
    assert sqs.tasks == []
    started = redrive(sqs, inbox.dlq_url, rate_per_s=2)
    assert (started.action, started.waiting) == ("started", 3)
    assert redrive(sqs, inbox.dlq_url).action == "running"  # one task per queue, as AWS allows
    assert sqs.advance(1.0) == 2  # at the rate asked
    sqs.advance(10.0)
    assert inbox.depth(inbox.queue_url) == 3 and inbox.depth(inbox.dlq_url) == 0
    assert redrive(sqs, inbox.dlq_url).action == "empty"


def test_a_move_task_from_a_queue_that_is_no_dead_letter_queue_is_refused(inbox: Inbox) -> None:
    sqs = MoveTasks(inbox.sqs)
    sqs.send_message(QueueUrl=inbox.queue_url, MessageBody="x")
    with pytest.raises(Exception, match="configured as a DLQ"):
        redrive(sqs, inbox.queue_url)
    with pytest.raises(ValueError, match="between 1 and 500"):
        redrive(sqs, inbox.dlq_url, rate_per_s=501)


def test_the_status_route_says_received_done_or_unknown(inbox: Inbox, monkeypatch) -> None:
    import boto3

    arn = boto3.client("secretsmanager", region_name="ca-central-1").create_secret(
        Name="receipt", SecretString=SECRET
    )["ARN"]
    env = {
        "FG_INBOX_TABLE": inbox.table.name,
        "FG_INBOX_DLQ_URL": inbox.dlq_url,
        "FG_BACK_OFFICE_URL": "https://back-office.example/submissions",
        "FG_BACK_OFFICE_TIMEOUT_S": "6",
        "FG_LEASE_S": "30",
        "FG_RECEIPT_DAYS": "30",
        "FG_RECEIPT_SECRET_ARN": arn,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ca-central-1")
    monkeypatch.setattr(handlers, "_cache", {})
    monkeypatch.setattr(handlers, "clock", lambda: T0 + 5)
    token = sign("9" * 32, T0, SECRET)

    def ask(receipt: str) -> tuple[int, dict]:
        answer = handlers.status({"pathParameters": {"receipt": receipt}})
        assert answer["headers"]["cache-control"] == "no-store"
        return answer["statusCode"], json.loads(answer["body"])

    assert ask(token) == (
        200,
        {"receipt": "9" * 32, "status": "received", "received_at": T0, "updated_at": T0 + 5},
    )
    inbox.send("9" * 32)
    inbox.poll(inbox.consumer(BackOffice()))
    code, body = ask(token)
    assert (code, body["status"]) == (200, "done")
    assert ask(sign("9" * 32, T0, "forged"))[0] == 404
    assert ask("not-a-receipt")[0] == 404


def test_a_function_without_its_environment_names_every_missing_variable() -> None:
    with pytest.raises(RuntimeError) as raised:
        handlers.Config.from_env({"FG_LEASE_S": "-1"})
    message = str(raised.value)
    assert "FG_INBOX_TABLE is not set" in message and "FG_RECEIPT_SECRET_ARN is not set" in message
    assert "FG_LEASE_S must be a positive number (got '-1')" in message


def test_the_edge_and_the_consumer_agree_on_every_receipt() -> None:
    """The edge (JavaScript) derives and tags the id, and signs the receipt; the consumer and
    the status route (Python) recognise each, or the consumer would dead-letter every message."""
    tagged, keyless, answer = edge(
        [
            post_event("viewer-request", 1, "key-0001-abcd"),
            post_event("viewer-request", 9, None),
            post_event("viewer-response", 1, "key-0001-abcd"),
        ]
    )
    expected = receipt_id("/submit/apply", "key-0001-abcd", "ignored")
    assert tagged["headers"]["x-floodgate-receipt"]["value"] == tag(expected, SECRET)
    assert untag(keyless["headers"]["x-floodgate-receipt"]["value"], [SECRET]) == receipt_id(
        "/submit/apply", None, "req-000009"
    )
    receipt = json.loads(answer["body"]["data"])["receipt"]
    signed = verify(receipt, [SECRET])
    assert signed is not None and signed[0] == expected
