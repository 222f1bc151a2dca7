"""``benchmarks/results.md``: the machine, the table, and how to read it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from .suite import Config, Row
from .timing import Sample


def _time(sample: Sample | None) -> str:
    if sample is None:
        return "—"
    s = sample.median
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def _ratio(row: Row) -> str:
    return f"{row.ratio:.2f}" if row.ratio is not None else "—"


def _cpu(sample: Sample | None) -> str:
    if sample is None or sample.cpu_median is None:
        return "—"
    s = sample.cpu_median
    return f"{s * 1000:.1f} ms" if s < 1 else f"{s:.2f} s"


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| measurement | migmagic (median) | compared with (median) | ratio | goal | result | runs, spread | CPU (median) | CPU ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        runs = f"{len(r.subject.runs)}, ±{r.subject.spread * 50:.0f}%" if r.subject else "—"
        compared = r.compared_with or "—"
        verdict = r.verdict if r.subject is not None else f"not measured: {r.note}"
        cpu_ratio = f"{r.cpu_ratio:.2f}" if r.cpu_ratio is not None else "—"
        lines.append(f"| {r.measurement} | {_time(r.subject)} | {compared} | {_ratio(r)} | {r.goal} | {verdict} | {runs} | {_cpu(r.subject)} | {cpu_ratio} |")
    return "\n".join(lines)


def render(rows: Sequence[Row], cfg: Config, machine: Sequence[tuple[str, str]], command: str, seconds: float) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mode = "quick (tiny N: checks the suite runs, figures mean nothing)" if cfg.quick else "full"
    parts = [
        "# migmagic benchmarks",
        "",
        f"Produced by `{command}` on {when}: {mode}, {cfg.repeats} repeats per measurement "
        f"(read commands: {cfg.read_repeats}), {seconds:.0f} s in all.",
        "",
        "## Machine",
        "",
        *(f"- {name}: {value}" for name, value in machine),
        "",
        "## Results",
        "",
        table(rows),
        "",
        "## How to read it",
        "",
        "- Every figure is the median of the runs; *spread* is half of (max − min) / median.",
        "- *CPU* is the CPU time (user + system) of the process that did the work: this one (and the",
        "  child processes it waited for), or, for kernel rows, the kernel's own, read with",
        "  `getrusage` inside the kernel just before and after the cell. On a shared machine CPU time",
        "  is steadier than wall time; goals marked *CPU* in the result are judged on it.",
        "- *ratio* is migmagic's median divided by the median of what it is compared with. The two",
        "  are measured side by side in the same run: their runs are interleaved, and which goes first",
        "  alternates. One warm-up run of each is not counted.",
        "- migmagic runs with every integrity feature on: the folder is validated (syntax, `upgrade()`,",
        "  parents, cycles), applied revisions' checksums are verified against the ledger, a ledger row",
        "  is written per step in the same transaction, and the migration lock is taken.",
        "- *In-process* upgrades use a warm `Migrator` (its parsed revision folder is cached, as in a",
        "  kernel that ran a command before) on a fresh database each run; its engine is disposed",
        "  between runs, so each run opens a new connection. The direct SQL is the text of",
        "  `upgrade head --sql` (Alembic's offline mode) run in one transaction, on a fresh database too.",
        "- Whole-process rows start a new Python each run; `alembic` runs the folder's `env.py` as",
        "  written by `%migrate init`.",
        "- Read commands time the Python API call (`Migrator.current()` etc., what `%migrate current`",
        "  computes before rendering) on a database at head. *One revision file changed* gives one",
        "  file a new modification time before every run, so the cache re-reads that file and rebuilds",
        "  the revision graph.",
        "- `%load_ext` rows run with `IPYTHONDIR` set to an empty temp dir (no user profile or startup",
        "  files).",
        "- *Kernel* rows drive a real Jupyter kernel (`jupyter_client`) the way a notebook front end",
        "  does: the cell is sent, and the time runs until its reply and every output (the progress",
        "  display included) arrived. The kernel has pandas imported, as a data notebook would. Its",
        "  Migrator is warm (one upgrade before the timed ones); each run starts from a fresh",
        "  database file. *Per revision above the direct SQL* pairs each migmagic run with the",
        "  direct-SQL run next to it: (migmagic − direct) / N. *migmagic's own share* is",
        "  (migmagic − Alembic's engine alone) / migmagic, from the medians.",
        "",
    ]
    return "\n".join(parts)
