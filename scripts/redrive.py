"""Move the inbox's dead-letter submissions back to its queue, once you know why they failed.

Usage: python -m scripts.redrive --stack prod --outputs outputs.json [--rate N] [--dry-run]
       python -m scripts.redrive --stack prod --dlq-url https://sqs.../floodgate-prod-inbox-dlq

`outputs.json` is `pulumi stack output --json` (its `inbox_dlq_url`). One SQS message move task
(StartMessageMoveTask) moves every message back to the queue it came from, at `--rate` a second
(1-500; SQS picks one when unset). Safe to repeat: a task already running is reported and left
alone, an empty queue is reported, and the consumer deletes a submission it already finished
(by its receipt) without posting it again. `--dry-run` says what it would move and moves
nothing. AWS throttling is retried (botocore standard mode).

Exit codes: 0 started, running or nothing to move; 2 error (bad input, no credentials, a call
AWS refused: each named).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

if not __package__:  # run by path (`python scripts/redrive.py`): make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import scripts  # noqa: F401 - without the project's dependencies: its own interpreter

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from functions.inbox.redrive import MAX_RATE_PER_S, Redrive, redrive
from planning.settings import SettingsError, load_stack_settings
from scripts.text_table import say

QUEUE_URL = re.compile(r"https://sqs\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/\d{12}/[\w-]{1,80}")
"""An SQS queue URL (GetQueueUrl's form): its region, the account, the queue's name."""


def dlq_url(outputs: Path | None, given: str | None, region: str) -> str:
    """The dead-letter queue's URL from `--dlq-url` or the stack outputs, checked."""
    url = given
    if url is None and outputs is not None:
        try:
            values: Any = json.loads(outputs.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"--outputs {outputs}: unreadable JSON ({exc})") from None
        if not isinstance(values, dict) or not isinstance(values.get("inbox_dlq_url"), str):
            raise ValueError(f"--outputs {outputs}: has no inbox_dlq_url (is the inbox enabled?)")
        url = values["inbox_dlq_url"]
    if url is None:
        raise ValueError("inbox_dlq_url missing: pass --outputs <stack outputs JSON> or --dlq-url")
    match = QUEUE_URL.fullmatch(url)
    if match is None:
        raise ValueError(f"--dlq-url {url!r}: must be an SQS queue URL (https://sqs.<region>...)")
    if match["region"] != region:
        raise ValueError(f"--dlq-url {url!r}: is in {match['region']}; the stack's is {region}")
    return url


def rate(text: str) -> int:
    """argparse type: messages a second SQS's move task takes, 1-500."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_RATE_PER_S:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a whole number from 1 to 500")
    return value


def report(result: Redrive, dry_run: bool) -> str:
    what = {
        "started": f"moving {result.waiting} submissions back to the inbox (task {result.task})",
        "running": f"a move task is already running ({result.task}); nothing started",
        "empty": "the dead-letter queue is empty: nothing to move",
        "would start": f"would move {result.waiting} submissions back to the inbox",
    }[result.action]
    return f"{'dry run: ' if dry_run else ''}{what}"


def main(argv: list[str] | None = None, sqs: Any = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--stack", required=True, help="stack name: stacks/Pulumi.<stack>.yaml")
    parser.add_argument("--outputs", type=Path, help="`pulumi stack output --json` as a file")
    parser.add_argument("--dlq-url", help="the inbox's dead-letter queue (overrides --outputs)")
    parser.add_argument("--rate", type=rate, help="messages a second, 1-500 (default: SQS's)")
    parser.add_argument("--dry-run", action="store_true", help="say what would move; move none")
    args = parser.parse_args(argv)
    try:
        settings = load_stack_settings(args.stack)
        url = dlq_url(args.outputs, args.dlq_url, settings.region)
    except (SettingsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    client = sqs or boto3.client(
        "sqs",
        region_name=settings.region,
        config=Config(retries={"mode": "standard", "max_attempts": 8}),
    )
    try:
        result = redrive(client, url, rate_per_s=args.rate, dry_run=args.dry_run)
    except NoCredentialsError:
        print(
            "error: no AWS credentials: log in (aws sso login) or set AWS_PROFILE", file=sys.stderr
        )
        return 2
    except (ClientError, BotoCoreError) as exc:
        print(f"error: AWS refused the redrive: {exc}", file=sys.stderr)
        return 2
    say([report(result, args.dry_run)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
