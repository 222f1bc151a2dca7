"""Timing: medians of several runs, two subjects measured side by side.

Side by side means interleaved: run ``k`` of the subject and run ``k`` of what it
is compared with follow each other (in alternating order), so a machine that
slows down or speeds up during the suite moves both medians alike.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Setup = Callable[[], None]


@dataclass(frozen=True)
class Measured:
    """What a subject that measures itself returns: wall and CPU seconds (say, a kernel's)."""

    wall: float
    cpu: float


@dataclass
class Sample:
    """The seconds each run took (wall, and CPU where known); ``median`` is what the report shows."""

    runs: list[float]
    cpu: list[float] | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def cpu_median(self) -> float | None:
        return statistics.median(self.cpu) if self.cpu else None

    @property
    def spread(self) -> float:
        """(max - min) / |median|: how noisy the runs were (a difference of two timings may have a negative median)."""
        return (max(self.runs) - min(self.runs)) / abs(self.median) if self.median else 0.0


def _cpu() -> float:
    """CPU seconds of this process and of its children that ended (user + system)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def measure(fn: Callable[[], object], setup: Setup | None = None) -> Measured:
    """Wall and CPU seconds of ``fn()``; ``setup()`` runs first and is not counted.

    The CPU is this process's plus that of the child processes ``fn`` waited for;
    a subject that returns a :class:`Measured` (a kernel cell) reports its own.
    """
    if setup is not None:
        setup()
    cpu, start = _cpu(), time.perf_counter()
    result = fn()
    wall, cpu = time.perf_counter() - start, _cpu() - cpu
    return result if isinstance(result, Measured) else Measured(wall, cpu)


def timed(fn: Callable[[], object], setup: Setup | None = None) -> float:
    """Seconds ``fn()`` took; ``setup()`` runs first and is not counted."""
    return measure(fn, setup).wall


def _sample(measured: list[Measured]) -> Sample:
    return Sample([m.wall for m in measured], [m.cpu for m in measured])


def repeat(fn: Callable[[], object], repeats: int, setup: Setup | None = None) -> Sample:
    return _sample([measure(fn, setup) for _ in range(repeats)])


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
    runs: dict[str, list[Measured]] = {name: [] for name in names}
    for k in range(repeats):
        order = names[k % len(names):] + names[: k % len(names)]
        for name in order:
            fn, setup = subjects[name]
            runs[name].append(measure(fn, setup))
    return {name: _sample(r) for name, r in runs.items()}


def process(argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: str | None = None) -> Callable[[], None]:
    """A callable that runs ``argv`` to completion and fails loudly if it fails."""

    def run() -> None:
        done = subprocess.run(list(argv), env=dict(env) if env is not None else None, cwd=cwd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited with {done.returncode}: {done.stderr.strip()[-800:]}")

    return run
