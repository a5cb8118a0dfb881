"""`make bench`: how long the engine-free evaluation of a stack takes, and how big it is.

Prints figures; asserts nothing (speed belongs here, not in unit tests). Target from the
foundation issue: prod evaluates in under 3 s median on a 2-core machine.
"""

from __future__ import annotations

import statistics
import time

from scripts.offline_cloud import run_offline, stack_config

RUNS = 7


def main() -> None:
    print(f"{'stack':<8} {'resources':>9} {'first run s':>12} {'median s':>9} {'min s':>7}")
    for stack in ("prod", "staging", "dev", "pr"):
        config = stack_config(stack)
        timings: list[float] = []
        count = 0
        for _ in range(RUNS + 1):
            start = time.perf_counter()
            count = len(run_offline(stack, config).registrations)
            timings.append(time.perf_counter() - start)
        first, rest = timings[0], timings[1:]
        print(
            f"{stack:<8} {count:>9} {first:>12.2f} {statistics.median(rest):>9.2f} "
            f"{min(rest):>7.2f}"
        )
    print(f"(first run of prod includes importing pulumi-aws; median over {RUNS} later runs)")


if __name__ == "__main__":
    main()
