"""Side-by-side timing on a shared, noisy machine: one process, contenders alternate, medians.

Every contender is a zero-argument callable that runs one step and blocks until its result is
ready. After a warm-up (compilation), each round runs every contender for at least
``min_round_seconds``; the order is reversed on alternate rounds so that load drifting over
time hits all sides alike. A contender's figure is the median over rounds of its mean time per
call, and ratios are taken between medians of the same run.
"""

import dataclasses
import math
import statistics
import time


@dataclasses.dataclass(frozen=True)
class Timing:
    """One contender's seconds per call: the median over rounds and every round's mean."""

    seconds: float
    rounds: tuple
    calls_per_round: int

    def throughput(self, items_per_call):
        return items_per_call / self.seconds


def compare(contenders, rounds=5, min_round_seconds=1.0, warmup_calls=2):
    """Times ``{name: callable}`` in interleaved rounds; returns ``{name: Timing}``."""
    if rounds < 1:
        raise ValueError(f"`rounds` must be at least 1. Received: rounds={rounds}")
    if not contenders:
        raise ValueError("Nothing to compare: `contenders` is empty.")
    calls = {}
    for name, step in contenders.items():
        for _ in range(max(warmup_calls - 1, 0)):
            step()
        start = time.perf_counter()
        step()
        single = max(time.perf_counter() - start, 1e-6)
        calls[name] = max(1, math.ceil(min_round_seconds / single))
    samples = {name: [] for name in contenders}
    names = list(contenders)
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else reversed(names):
            step, count = contenders[name], calls[name]
            start = time.perf_counter()
            for _ in range(count):
                step()
            samples[name].append((time.perf_counter() - start) / count)
    return {
        name: Timing(statistics.median(values), tuple(values), calls[name])
        for name, values in samples.items()
    }
