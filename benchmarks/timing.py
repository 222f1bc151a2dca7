"""Timing: medians of several runs, two subjects measured side by side.

Side by side means interleaved: run ``k`` of the subject and run ``k`` of what it
is compared with follow each other (in alternating order), so a machine that
slows down or speeds up during the suite moves both medians alike.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Setup = Callable[[], None]


@dataclass
class Sample:
    """The seconds each run took; ``median`` is what the report shows."""

    runs: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the runs were."""
        return (max(self.runs) - min(self.runs)) / self.median if self.median else 0.0


def timed(fn: Callable[[], object], setup: Setup | None = None) -> float:
    """Seconds ``fn()`` took; ``setup()`` runs first and is not counted."""
    if setup is not None:
        setup()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def repeat(fn: Callable[[], object], repeats: int, setup: Setup | None = None) -> Sample:
    return Sample([timed(fn, setup) for _ in range(repeats)])


def side_by_side(
    subjects: Mapping[str, tuple[Callable[[], object], Setup | None]],
    repeats: int,
    warmup: int = 0,
) -> dict[str, Sample]:
    """Run every subject ``repeats`` times, interleaved, rotating who goes first."""
    names = list(subjects)
    for _ in range(warmup):
        for name in names:
            fn, setup = subjects[name]
            timed(fn, setup)
    runs: dict[str, list[float]] = {name: [] for name in names}
    for k in range(repeats):
        order = names[k % len(names):] + names[: k % len(names)]
        for name in order:
            fn, setup = subjects[name]
            runs[name].append(timed(fn, setup))
    return {name: Sample(r) for name, r in runs.items()}


def process(argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None) -> Callable[[], None]:
    """A callable that runs ``argv`` to completion and fails loudly if it fails."""

    def run() -> None:
        done = subprocess.run(list(argv), env=dict(env) if env is not None else None, cwd=cwd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited with {done.returncode}: {done.stderr.strip()[-800:]}")

    return run
