"""The measurements: each one builds its workload in a temp dir and returns report rows.

Every ratio is migmagic's median divided by the median of what it is compared
with, both measured side by side in the same run (see :mod:`benchmarks.timing`).
migmagic runs with every integrity feature on: folder validation, checksums,
the ledger and the migration lock.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import timing
from .timing import Sample
from .workload import make_folder

POSTGRES_ADMIN = os.environ.get("MIGMAGIC_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@dataclass(frozen=True)
class Config:
    """Sizes and repeats of one run of the suite."""

    quick: bool
    repeats: int
    postgres_admin: str | None
    long: bool = False

    def n(self, full: int) -> int:
        """The workload size: ``full`` normally, a tiny stand-in with ``--quick``."""
        return {10: 3, 100: 4, 300: 6, 500: 8, 1000: 12, 3000: 15}.get(full, 5) if self.quick else full

    @property
    def process_repeats(self) -> int:
        return self.repeats

    @property
    def read_repeats(self) -> int:
        return 3 if self.quick else max(self.repeats, 15)


@dataclass
class Row:
    """One line of the results table."""

    key: str
    measurement: str
    subject: Sample | None
    compared_with: str = ""
    baseline: Sample | None = None
    goal: str = "report"
    goal_ratio: float | None = None
    goal_ms: float | None = None
    note: str = ""
    on_cpu: bool = False
    """Judge the goal on CPU time (when both sides have it) rather than wall time."""

    @property
    def ratio(self) -> float | None:
        if self.subject is None or self.baseline is None or not self.baseline.median:
            return None
        return self.subject.median / self.baseline.median

    @property
    def cpu_ratio(self) -> float | None:
        if self.subject is None or self.baseline is None or not self.subject.cpu_median or not self.baseline.cpu_median:
            return None
        return self.subject.cpu_median / self.baseline.cpu_median

    @property
    def verdict(self) -> str:
        if self.subject is None:
            return "not measured"
        cpu = self.on_cpu and self.cpu_ratio is not None
        if self.goal_ratio is not None and self.ratio is not None:
            r = self.cpu_ratio if cpu else self.ratio
            assert r is not None
            what = "CPU " if cpu else ""
            return f"met ({what}{r:.2f})" if r <= self.goal_ratio else f"missed: {what}{r:.2f} > {self.goal_ratio:g} (+{r - self.goal_ratio:.2f})"
        if self.goal_ms is not None:
            cpu_ms = self.subject.cpu_median
            ms = (cpu_ms if self.on_cpu and cpu_ms is not None else self.subject.median) * 1000
            what = "CPU " if self.on_cpu and cpu_ms is not None else ""
            return f"met ({what}{ms:.2f} ms)" if ms <= self.goal_ms else f"missed: {what}{ms:.2f} ms > {self.goal_ms:g} ms (+{ms - self.goal_ms:.2f} ms)"
        return "report"


Measurement = Callable[[Config, Path], list[Row]]


# --------------------------------------------------------------------------- helpers


def _bin(name: str) -> str:
    """An executable of the running environment (the venv's ``ipython``, ``alembic``)."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed in this environment.")
    return found


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _unlink(*paths: Path) -> None:
    for p in paths:
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(str(p) + suffix).unlink()


def _statements(script: str) -> list[str]:
    """The statements of Alembic's offline SQL, without comments, BEGIN and COMMIT."""
    out = []
    for chunk in re.split(r";\s*\n\s*\n", script):
        text = "\n".join(line for line in chunk.splitlines() if not line.lstrip().startswith("--")).strip().rstrip(";")
        if text and text.upper() not in ("BEGIN", "COMMIT"):
            out.append(text)
    return out


def _run_sqlite_script(path: Path, script: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.executescript(script)  # the script holds BEGIN; ... COMMIT;: one transaction
    finally:
        conn.close()


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _alembic_config(folder: Path) -> Any:
    """An Alembic Config that runs the folder's own ``env.py`` (as ``alembic`` does), without logging setup."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig(stdout=io.StringIO())
    cfg.set_main_option("script_location", str(folder))
    return cfg


def _alembic_one_transaction(folder: Path) -> Callable[[str], None]:
    """``upgrade(url)``: Alembic's engine alone on ``folder`` (read once), in one transaction.

    What migmagic runs without what it adds: no lock, no checksums, no ledger, no
    validation. The folder is parsed once, as in migmagic's warm kernel; on SQLite
    pysqlite's own transaction handling is off and one BEGIN ... COMMIT wraps it all.
    """
    import sqlalchemy as sa
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    config = _alembic_config(folder)
    script = ScriptDirectory.from_config(config)
    script.get_heads()  # parse every revision now, not in the timed runs

    def upgrade(url: str) -> None:
        engine = sa.create_engine(url)
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", lambda dbapi_conn, _rec: setattr(dbapi_conn, "isolation_level", None))
            sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        try:
            with engine.begin() as conn:
                with EnvironmentContext(config, script, fn=lambda heads, _ctx: script._upgrade_revs("head", heads)) as env:
                    env.configure(connection=conn, transactional_ddl=True)
                    with env.begin_transaction():
                        env.run_migrations()
        finally:
            engine.dispose()

    return upgrade


def forget_recordings() -> None:
    """No replay recordings, on disk or in this process: the next upgrade is a first application."""
    from migmagic import replay

    replay.forget()
    shutil.rmtree(replay.store_dir(), ignore_errors=True)


def _quiet_alembic() -> None:
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)


# --------------------------------------------------------------------------- %load_ext


def load_ext(cfg: Config, tmp: Path) -> list[Row]:
    """Whole ``ipython -c`` processes: with ``%load_ext migmagic``, and with nothing."""
    ipython, python = _bin("ipython"), sys.executable
    ipydir = tmp / "ipython-dir"
    env = {**os.environ, "IPYTHONDIR": str(ipydir)}
    run = lambda *argv: (timing.process(argv, env=env, cwd=str(tmp)), None)  # noqa: E731
    subjects = {
        "ipython pass": run(ipython, "-c", "pass"),
        "ipython load_ext": run(ipython, "-c", "%load_ext migmagic"),
        "ipython import alembic": run(ipython, "-c", "import alembic"),
        "python pass": run(python, "-c", "pass"),
        "python import alembic": run(python, "-c", "import alembic"),
        "python import migmagic": run(python, "-c", "import migmagic"),
    }
    s = timing.side_by_side(subjects, cfg.repeats, warmup=1)
    return [
        Row("load_ext", '`%load_ext migmagic`, whole `ipython -c` process', s["ipython load_ext"], '`ipython -c "pass"`', s["ipython pass"], "≤ 1.10", goal_ratio=1.10),
        Row("load_ext_alembic", 'reference: `ipython -c "import alembic"`', s["ipython import alembic"], '`ipython -c "pass"`', s["ipython pass"]),
        Row("import_alembic", 'reference: `python -c "import alembic"`', s["python import alembic"], '`python -c "pass"`', s["python pass"]),
        Row("import_migmagic", 'reference: `python -c "import migmagic"`', s["python import migmagic"], '`python -c "pass"`', s["python pass"]),
    ]


# --------------------------------------------------------------------------- upgrade head, SQLite, in-process


def upgrade_sqlite(cfg: Config, tmp: Path) -> list[Row]:
    """``upgrade head`` in-process on a fresh SQLite file vs the same SQL through ``sqlite3``."""
    _quiet_alembic()
    return [row for full in (300, 1000) for row in _upgrade_sqlite(cfg, tmp, full)]


def _upgrade_sqlite(cfg: Config, tmp: Path, full: int) -> list[Row]:
    from alembic import command

    from migmagic import Migrator

    n = cfg.n(full)
    work = tmp / f"upgrade-sqlite-{n}"
    folder = work / "migrations"
    mm_db, direct_db, alembic_db = work / "migmagic.db", work / "direct.db", work / "alembic.db"
    work.mkdir()
    make_folder(folder, n, _sqlite_url(mm_db))
    m = Migrator(_sqlite_url(mm_db), folder)
    script = str(m.sql("upgrade", "base:head"))

    def fresh_mm() -> None:
        m.close()  # engine disposed: every run connects anew
        _unlink(mm_db)

    alembic_cfg = _alembic_config(folder)

    def run_alembic() -> None:
        with _env(DATABASE_URL=_sqlite_url(alembic_db)):
            command.upgrade(alembic_cfg, "head")

    def first_mm() -> None:
        fresh_mm()
        forget_recordings()

    engine_alone = _alembic_one_transaction(folder)
    subjects = {
        "migmagic": (lambda: m.upgrade("head"), fresh_mm),
        "first": (lambda: m.upgrade("head"), first_mm),
        "direct": (lambda: _run_sqlite_script(direct_db, script), lambda: _unlink(direct_db)),
        "render": (lambda: str(m.sql("upgrade", "base:head")), None),
        "engine": (lambda: engine_alone(_sqlite_url(alembic_db)), lambda: _unlink(alembic_db)),
        "alembic": (run_alembic, lambda: _unlink(alembic_db)),
    }
    s = timing.side_by_side(subjects, cfg.repeats, warmup=1)
    m.close()
    direct = f"same SQL (`upgrade head --sql`) via `sqlite3`, one transaction ({s['direct'].median * 1000:.0f} ms)"
    return [
        Row(f"upgrade_sqlite_{full}", f"`upgrade head`, SQLite, N = {n}, in-process, recordings warm (replayed; warm Migrator, fresh database file, new connection)", s["migmagic"], direct, s["direct"], "≤ 1.5" if full == 300 else "≤ 3.0", goal_ratio=1.5 if full == 300 else 3.0, on_cpu=True),
        Row(f"upgrade_sqlite_{full}_first", f"`upgrade head`, SQLite, N = {n}, in-process, first application (no recordings: Alembic runs and is recorded)", s["first"], direct, s["direct"], "≤ 3.0", goal_ratio=3.0, on_cpu=True),
        Row(f"upgrade_sqlite_{full}_render", f"reference: `upgrade head --sql`, SQLite, N = {n} (builds and compiles every op, executes nothing)", s["render"], direct, s["direct"]),
        Row(f"upgrade_sqlite_{full}_engine", f"reference: Alembic's engine alone, SQLite, N = {n} (folder read once, one transaction; no lock, checksums, ledger or validation)", s["engine"], direct, s["direct"]),
        Row(f"upgrade_sqlite_{full}_alembic", f"reference: Alembic in-process `command.upgrade`, SQLite, N = {n} (its env.py, per-revision commits, re-reads the folder)", s["alembic"], direct, s["direct"]),
    ]


# --------------------------------------------------------------------------- upgrade head, whole process


def upgrade_process(cfg: Config, tmp: Path) -> list[Row]:
    """A whole process that upgrades a fresh SQLite file: ``alembic`` vs migmagic."""
    return [_upgrade_process(cfg, tmp, full) for full in (300, 1000)]


def _upgrade_process(cfg: Config, tmp: Path, full: int) -> Row:
    n = cfg.n(full)
    work = tmp / f"upgrade-process-{n}"
    folder = work / "migrations"
    mm_db, alembic_db = work / "migmagic.db", work / "alembic.db"
    work.mkdir()
    make_folder(folder, n, _sqlite_url(alembic_db))
    alembic_argv = [_bin("alembic"), "-c", str(folder / "alembic.ini"), "upgrade", "head"]
    mm_code = f"from migmagic import Migrator; Migrator({_sqlite_url(mm_db)!r}, {str(folder)!r}).upgrade('head')"
    # MIGMAGIC_ALEMBIC=plain: the folder's env.py runs plain Alembic (else the command goes through migmagic's core).
    env = {**os.environ, "DATABASE_URL": _sqlite_url(alembic_db), "MIGMAGIC_ALEMBIC": "plain"}
    subjects = {
        "migmagic": (timing.process([sys.executable, "-c", mm_code], env=env, cwd=str(work)), lambda: _unlink(mm_db)),
        "alembic": (timing.process(alembic_argv, env=env, cwd=str(work)), lambda: _unlink(alembic_db)),
    }
    s = timing.side_by_side(subjects, cfg.process_repeats, warmup=1)
    return Row(f"upgrade_process_{full}", f"`upgrade head`, SQLite, N = {n}, whole process (`python -c` with `Migrator(...).upgrade('head')`)", s["migmagic"], f"`alembic -c migrations/alembic.ini upgrade head` ({s['alembic'].median:.2f} s)", s["alembic"])


# --------------------------------------------------------------------------- upgrade head, PostgreSQL


def upgrade_postgres(cfg: Config, tmp: Path) -> list[Row]:
    """``upgrade head`` on a fresh PostgreSQL database vs the same SQL through psycopg."""
    import psycopg
    import sqlalchemy as sa
    from alembic import command

    from migmagic import Migrator

    _quiet_alembic()
    n = cfg.n(500)
    assert cfg.postgres_admin
    admin = sa.create_engine(cfg.postgres_admin, isolation_level="AUTOCOMMIT")
    base = sa.engine.make_url(cfg.postgres_admin)
    name = f"mm_bench_{uuid.uuid4().hex[:10]}"
    url = base.set(database=name).render_as_string(hide_password=False)
    libpq = base.set(drivername="postgresql", database=name).render_as_string(hide_password=False)

    def recreate() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            conn.execute(sa.text(f"CREATE DATABASE {name}"))

    work = tmp / "upgrade-postgres"
    folder = work / "migrations"
    work.mkdir()
    make_folder(folder, n, url)
    m = Migrator(url, folder)
    script = str(m.sql("upgrade", "base:head"))
    statements = _statements(script)

    def fresh_mm() -> None:
        m.close()
        recreate()

    def per_statement() -> None:
        with psycopg.connect(libpq) as conn:  # one transaction, committed when the block ends
            for stmt in statements:
                conn.execute(stmt)

    def one_batch() -> None:
        with psycopg.connect(libpq, autocommit=True) as conn:
            conn.execute(script)  # BEGIN; ... COMMIT; sent as one simple query

    alembic_cfg = _alembic_config(folder)

    def run_alembic() -> None:
        with _env(DATABASE_URL=url):
            command.upgrade(alembic_cfg, "head")

    def first_mm() -> None:
        fresh_mm()
        forget_recordings()

    subjects = {
        "migmagic": (lambda: m.upgrade("head"), fresh_mm),
        "first": (lambda: m.upgrade("head"), first_mm),
        "direct": (per_statement, recreate),
        "batch": (one_batch, recreate),
        "alembic": (run_alembic, recreate),
    }
    try:
        s = timing.side_by_side(subjects, cfg.repeats, warmup=1)
    finally:
        m.close()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()
    direct = f"same SQL via psycopg, statement by statement, one transaction ({s['direct'].median * 1000:.0f} ms)"
    return [
        Row("upgrade_postgres", f"`upgrade head`, PostgreSQL, N = {n}, in-process, recordings warm (replayed; warm Migrator, fresh database, new connection)", s["migmagic"], direct, s["direct"], "≤ 1.1", goal_ratio=1.1, on_cpu=False),
        Row("upgrade_postgres_first", f"`upgrade head`, PostgreSQL, N = {n}, in-process, first application (no recordings)", s["first"], direct, s["direct"], "≤ 1.2", goal_ratio=1.2),
        Row("upgrade_postgres_batch", f"reference: same SQL via psycopg as one batch (one round trip), N = {n}", s["batch"], direct, s["direct"]),
        Row("upgrade_postgres_alembic", f"reference: Alembic in-process `command.upgrade`, PostgreSQL, N = {n} (its env.py, one transaction)", s["alembic"], direct, s["direct"]),
    ]


# --------------------------------------------------------------------------- downgrade base, SQLite


def downgrade_sqlite(cfg: Config, tmp: Path) -> list[Row]:
    """``downgrade base`` from head vs the same SQL through ``sqlite3``."""
    from migmagic import Migrator

    n = cfg.n(300)
    work = tmp / "downgrade-sqlite"
    folder = work / "migrations"
    template, mm_db, direct_db = work / "template.db", work / "migmagic.db", work / "direct.db"
    work.mkdir()
    make_folder(folder, n, _sqlite_url(template))
    seed = Migrator(_sqlite_url(template), folder)
    seed.upgrade("head")  # by migmagic: the ledger holds a checksum for every revision
    seed.close()
    m = Migrator(_sqlite_url(mm_db), folder)
    script = str(m.sql("downgrade", "head:base"))

    def fresh_mm() -> None:
        m.close()
        _unlink(mm_db)
        shutil.copyfile(template, mm_db)

    def fresh_direct() -> None:
        _unlink(direct_db)
        shutil.copyfile(template, direct_db)

    subjects = {
        "migmagic": (lambda: m.downgrade("base"), fresh_mm),
        "direct": (lambda: _run_sqlite_script(direct_db, script), fresh_direct),
    }
    s = timing.side_by_side(subjects, cfg.repeats, warmup=1)
    m.close()
    return [
        Row("downgrade_sqlite", f"`downgrade base`, SQLite, N = {n}, in-process (warm Migrator, new connection)", s["migmagic"], f"same SQL (`downgrade head:base --sql`) via `sqlite3`, one transaction ({s['direct'].median * 1000:.0f} ms)", s["direct"], "≤ 3.0", goal_ratio=3.0)
    ]


# --------------------------------------------------------------------------- current, history, heads, status


def read_commands(cfg: Config, tmp: Path) -> list[Row]:
    """Read-only commands on a database at head with N revisions: warm, and after one file changed."""
    from alembic import command

    from migmagic import Migrator

    _quiet_alembic()
    n = cfg.n(1000)
    work = tmp / "read-commands"
    folder = work / "migrations"
    db = work / "app.db"
    work.mkdir()
    make_folder(folder, n, _sqlite_url(db))
    m = Migrator(_sqlite_url(db), folder)
    m.upgrade("head")
    changed = sorted((folder / "versions").glob("*.py"))[n // 2]
    tick = [changed.stat().st_mtime_ns]

    def touch() -> None:
        # Same text, new modification time: the cache must re-read this one file.
        tick[0] += 1_000_000
        os.utime(changed, ns=(tick[0], tick[0]))

    commands: dict[str, Callable[[], object]] = {
        "current": m.current,
        "history": m.history,
        "heads": m.heads,
        "status": m.status,
    }
    rows: list[Row] = []
    for name, fn in commands.items():
        fn()  # warm: the kernel has run a command before
        warm = timing.repeat(fn, cfg.read_repeats)
        after_change = timing.repeat(fn, cfg.read_repeats, setup=touch)
        rows.append(Row(f"read_{name}", f"`{name}`, N = {n}, warm, nothing changed on disk (ms)", warm, goal="≤ 20 ms", goal_ms=20.0))
        rows.append(Row(f"read_{name}_changed", f"`{name}`, N = {n}, warm, one revision file changed", after_change, f"`{name}` unchanged ({warm.median * 1000:.1f} ms)", warm, "≤ 2.0", goal_ratio=2.0))
    m.close()

    def cold_status() -> None:
        fresh = Migrator(_sqlite_url(db), folder)
        fresh.status()
        fresh.close()

    rows.append(Row("read_status_cold", f"reference: `status`, N = {n}, first command of a new Migrator (cold cache)", timing.repeat(cold_status, min(cfg.repeats, 3))))

    alembic_cfg = _alembic_config(folder)
    with _env(DATABASE_URL=_sqlite_url(db)):
        current = timing.repeat(lambda: command.current(alembic_cfg), min(cfg.repeats, 5))
    history = timing.repeat(lambda: command.history(alembic_cfg), min(cfg.repeats, 5))
    rows.append(Row("alembic_current", f"reference: Alembic in-process `command.current`, N = {n}", current))
    rows.append(Row("alembic_history", f"reference: Alembic in-process `command.history`, N = {n}", history))
    return rows


# --------------------------------------------------------------------------- in a real kernel


def _paired(a: Sample, b: Sample, n: int) -> Sample:
    """Per run, (a - b) / n: a's run minus the run of b beside it, per revision."""
    cpu = [(x - y) / n for x, y in zip(a.cpu, b.cpu, strict=True)] if a.cpu and b.cpu else None
    return Sample([(x - y) / n for x, y in zip(a.runs, b.runs, strict=True)], cpu)


def upgrade_kernel(cfg: Config, tmp: Path) -> list[Row]:
    """``%migrate upgrade head`` in a real kernel, progress on: vs the direct SQL and Alembic's engine alone, same kernel."""
    sizes = [10, 100, 300, 1000] + ([3000] if cfg.long else [])
    return [row for full in sizes for row in _upgrade_kernel(cfg, tmp, full)]


def _upgrade_kernel(cfg: Config, tmp: Path, full: int) -> list[Row]:
    from .kernel import Kernel

    n = cfg.n(full)
    work = tmp / f"upgrade-kernel-{n}"
    folder = work / "migrations"
    mm_db, direct_db, engine_db = work / "migmagic.db", work / "direct.db", work / "engine.db"
    work.mkdir()
    make_folder(folder, n, _sqlite_url(mm_db))
    with Kernel(work) as k:
        k.run("%load_ext migmagic")
        k.run(f"%migrate init {_sqlite_url(mm_db)} --dir {folder}")
        k.run(
            "import os, pandas\n"
            "from migmagic import magics as _mm_magics\n"
            "from benchmarks import suite as _bench\n"
            f"_script = str(_mm_magics._loaded[id(get_ipython())].migrator.sql('upgrade', 'base:head'))\n"
            f"_engine = _bench._alembic_one_transaction(__import__('pathlib').Path({str(folder)!r}))\n"
            "_bench._quiet_alembic()"
        )

        def fresh(db: Path, close: bool = False, cold: bool = False) -> Callable[[], None]:
            code = ("_mm_magics._loaded[id(get_ipython())].migrator.close(); " if close else "") + f"_bench._unlink(__import__('pathlib').Path({str(db)!r}))"
            code += "; _bench.forget_recordings()" if cold else ""
            return lambda: (k.run(code), None)[1]

        no_recordings = fresh(mm_db, close=True, cold=True)
        subjects = {
            "migmagic": (lambda: k.timed("%migrate upgrade head"), no_recordings),
            "replayed": (lambda: k.timed("%migrate upgrade head"), fresh(mm_db, close=True)),
            "api": (lambda: k.timed("_mm_magics._loaded[id(get_ipython())].migrator.upgrade('head')"), no_recordings),
            "direct": (lambda: k.timed(f"_bench._run_sqlite_script(__import__('pathlib').Path({str(direct_db)!r}), _script)"), fresh(direct_db)),
            "engine": (lambda: k.timed(f"_engine({_sqlite_url(engine_db)!r})"), fresh(engine_db)),
        }
        if full == 300:  # the garbage collector as the kernel has it, for comparison
            k.run("from migmagic import collector as _mm_collector")
            subjects["gc_free"] = (lambda: k.timed("_mm_collector.ENABLED = False\n%migrate upgrade head\n_mm_collector.ENABLED = True"), no_recordings)
        s = timing.side_by_side(subjects, cfg.repeats, warmup=1)
    mm, direct, engine, replayed = s["migmagic"], s["direct"], s["engine"], s["replayed"]
    share = 1 - (engine.cpu_median or engine.median) / (mm.cpu_median or mm.median)
    direct_text = f"same SQL via `sqlite3` in the kernel, one transaction ({direct.median * 1000:.0f} ms, CPU {(direct.cpu_median or 0) * 1000:.0f} ms)"
    rows = [
        Row(f"upgrade_kernel_{full}", f"`%migrate upgrade head` in a kernel, progress on, SQLite, N = {n} (first application, no recordings)", mm, direct_text, direct, on_cpu=True),
        Row(f"upgrade_kernel_{full}_per_revision", f"`%migrate upgrade head` in a kernel, N = {n}: per revision above the direct SQL", _paired(mm, direct, n), goal="≤ 1.0 ms" if full == 300 else "report", goal_ms=1.0 if full == 300 else None, on_cpu=True),
        Row(f"upgrade_kernel_{full}_own_per_revision", f"`%migrate upgrade head` in a kernel, N = {n}: per revision above Alembic's engine alone (what migmagic adds: lock, checks, ledger, recording, progress)", _paired(mm, engine, n), on_cpu=True),
        Row(f"upgrade_kernel_{full}_engine_per_revision", f"reference: Alembic's engine alone in the kernel, N = {n}: per revision above the direct SQL", _paired(engine, direct, n), on_cpu=True),
        Row(
            f"upgrade_kernel_{full}_engine", f"`%migrate upgrade head` in a kernel, N = {n}, against Alembic's engine alone in the same kernel (migmagic's own share of the CPU: {share:.1%})",
            mm, f"Alembic's engine alone, one transaction ({engine.median * 1000:.0f} ms, CPU {(engine.cpu_median or 0) * 1000:.0f} ms)", engine,
            goal="share ≤ 5% (≤ 1.053)" if full == 300 else "report", goal_ratio=1 / 0.95 if full == 300 else None, on_cpu=True,
        ),
        *(
            [Row(f"upgrade_kernel_{full}_gc", f"`%migrate upgrade head` in a kernel, N = {n}, collector held (heap frozen, threshold raised) against not held", mm, "the same with `migmagic.collector.ENABLED = False`", s["gc_free"], on_cpu=True)]
            if "gc_free" in s else []
        ),
        Row(
            f"upgrade_kernel_{full}_api", f"`Migrator.upgrade('head')` in the same kernel, N = {n}, first application: no progress display (migmagic's own share of the CPU without it: {1 - (engine.cpu_median or engine.median) / (s['api'].cpu_median or s['api'].median):.1%})",
            s["api"], f"Alembic's engine alone ({engine.median * 1000:.0f} ms, CPU {(engine.cpu_median or 0) * 1000:.0f} ms)", engine, on_cpu=True,
        ),
        Row(f"upgrade_kernel_{full}_replayed", f"`%migrate upgrade head` in a kernel, N = {n}, recordings warm (replayed)", replayed, direct_text, direct, goal="≤ 1.5" if full == 300 else "report", goal_ratio=1.5 if full == 300 else None, on_cpu=True),
    ]
    return rows


def current_kernel(cfg: Config, tmp: Path) -> list[Row]:
    """The first ``%migrate current`` in a fresh kernel against a whole ``alembic current`` process."""
    from .kernel import Kernel

    n = cfg.n(1000)
    work = tmp / "current-kernel"
    folder = work / "migrations"
    db = work / "app.db"
    work.mkdir()
    make_folder(folder, n, _sqlite_url(db))
    from migmagic import Migrator

    seed = Migrator(_sqlite_url(db), folder)
    seed.upgrade("head")
    seed.close()
    kernels: list[Kernel] = []

    def start() -> None:
        k = Kernel(work)
        k.run("%load_ext migmagic")
        k.run(f"%config Migrate.url = {_sqlite_url(db)!r}")
        k.run(f"%config Migrate.directory = {str(folder)!r}")
        kernels.append(k)

    def first_current() -> Any:
        k = kernels[-1]
        try:
            return k.timed("%migrate current")
        finally:
            k.close()

    env = {**os.environ, "DATABASE_URL": _sqlite_url(db)}
    alembic = timing.process([_bin("alembic"), "-c", str(folder / "alembic.ini"), "current"], env=env, cwd=str(work))
    subjects = {"migmagic": (first_current, start), "alembic": (alembic, None)}
    s = timing.side_by_side(subjects, cfg.process_repeats, warmup=1)
    return [
        Row(
            "current_kernel", f"first `%migrate current` in a fresh kernel (after `%load_ext`), N = {n}",
            s["migmagic"], f"a whole `alembic -c migrations/alembic.ini current` process ({s['alembic'].median * 1000:.0f} ms, CPU {(s['alembic'].cpu_median or 0) * 1000:.0f} ms)",
            s["alembic"], "≤ 0.5", goal_ratio=0.5, on_cpu=True,
        )
    ]


def status_history(cfg: Config, tmp: Path) -> list[Row]:
    """Warm ``status`` on a ledger with a long history against a fresh ledger, both at head."""
    from migmagic import Migrator

    n, cycles = cfg.n(300), 2 if cfg.quick else 10
    work = tmp / "status-history"
    folder = work / "migrations"
    work.mkdir()
    make_folder(folder, n, _sqlite_url(work / "fresh.db"))
    fresh, cycled = Migrator(_sqlite_url(work / "fresh.db"), folder), Migrator(_sqlite_url(work / "cycled.db"), folder)
    fresh.upgrade("head")
    for _ in range(cycles):
        cycled.upgrade("head")
        cycled.downgrade("base")
    cycled.upgrade("head")
    subjects: dict[str, tuple[Callable[[], object], Any]] = {"cycled": (cycled.status, None), "fresh": (fresh.status, None)}
    s = timing.side_by_side(subjects, cfg.read_repeats * 2, warmup=1)
    fresh.close()
    cycled.close()
    rows = n * (2 * cycles + 1)
    return [
        Row(
            "status_history", f"`status`, N = {n}, warm, after {cycles} downgrade/upgrade cycles ({rows:,} ledger rows)",
            s["cycled"], f"`status` on a fresh ledger ({n} rows, {s['fresh'].median * 1000:.1f} ms)", s["fresh"], "≤ 1.2", goal_ratio=1.2,
        )
    ]


# --------------------------------------------------------------------------- review at the cell

_LINT_CELL = """def upgrade():
    op.add_column("events", sa.Column("note", sa.Text))
    op.create_index("ix_events_title", "events", ["title"])
    op.create_foreign_key("fk_events_owner", "events", "owners", ["owner_id"], ["id"])
    op.alter_column("events", "title", nullable=False)


def downgrade():
    op.drop_index("ix_events_title", "events")
"""


def lint_cell(cfg: Config, tmp: Path) -> list[Row]:
    """What squawk's review adds to a ``%%revision`` cell on PostgreSQL: render offline, squawk, findings, the safer cell."""
    import types

    from migmagic import lint
    from migmagic.folder import Folder

    db = types.SimpleNamespace(dialect_name="postgresql", lock_timeout=30.0)  # the review opens no connection
    review = (lambda: lint.at_cell(_LINT_CELL, db, tmp, message="events"), None)
    compile_check = (lambda: Folder.check_compiles(_LINT_CELL, "postgresql"), None)
    s = timing.side_by_side({"lint": review, "compile": compile_check}, cfg.read_repeats, warmup=1)
    return [
        Row(
            "lint_cell", "`%%revision` on PostgreSQL: squawk's review of a four-operation cell (render offline, squawk, findings, safer cell), per revision",
            s["lint"], f"the cell's compile check alone ({s['compile'].median * 1000:.1f} ms)", s["compile"], goal="≤ 50 ms", goal_ms=50.0,
        )
    ]


MEASUREMENTS: dict[str, Measurement] = {
    "load_ext": load_ext,
    "upgrade_sqlite": upgrade_sqlite,
    "upgrade_process": upgrade_process,
    "upgrade_postgres": upgrade_postgres,
    "downgrade_sqlite": downgrade_sqlite,
    "read_commands": read_commands,
    "status_history": status_history,
    "upgrade_kernel": upgrade_kernel,
    "current_kernel": current_kernel,
    "lint_cell": lint_cell,
}
"""Name (for ``--only``) -> measurement, in the order the report lists them."""


def run(
    names: list[str],
    cfg: Config,
    skipped: dict[str, list[Row]] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Row]:
    """Run the named measurements, each in a temp dir of its own that is removed after.

    ``skipped`` maps a measurement that cannot run here to the rows that say why.
    """
    rows: list[Row] = []
    for name in names:
        if skipped and name in skipped:
            rows.extend(skipped[name])
            continue
        progress(name)
        with tempfile.TemporaryDirectory(prefix=f"migmagic-bench-{name}-") as tmp:
            cwd = os.getcwd()
            os.chdir(tmp)
            try:
                # Recordings of its own (kernels started here inherit it): warm or cold as the measurement says.
                with _env(XDG_CACHE_HOME=str(Path(tmp) / "cache")):
                    forget_recordings()
                    rows.extend(MEASUREMENTS[name](cfg, Path(tmp)))
            finally:
                os.chdir(cwd)
    return rows
