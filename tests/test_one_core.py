"""One core that every command drives: the observers each command gets, the version table by Alembic's rules only,
the commands declared once, and the refusals of options that do not go together."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import plain
import pytest
import sqlalchemy as sa
from conftest import DATABASES, fresh_database, table_revision, version

from migmagic import Migrator, observers
from migmagic.commands import COMMANDS, REVISION_CELL, call
from migmagic.errors import DataLossRefused, Fix, MigrationFailed, UsageError

PACKAGE = Path(__import__("migmagic").__file__).parent

EVENTS = '''def upgrade():
    op.create_table("events", sa.Column("id", sa.Integer, primary_key=True), sa.Column("title", sa.String(50)))


def downgrade():
    op.drop_table("events")
'''
EVENTS_WIDER = EVENTS.replace("sa.String(50)", "sa.String(80)")


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() or 0)
    finally:
        engine.dispose()


def _fill(url: str, table: str, n: int) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {table} (id, title) VALUES (:i, 't')"), [{"i": i} for i in range(1, n + 1)])
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- the observer table


def test_the_table_says_which_observers_each_command_gets() -> None:
    assert observers.TABLE == {
        "upgrade": ("data-loss guard", "restore point", "progress"),
        "downgrade": ("data-loss guard", "restore point", "progress"),
        "reapply": ("data-loss guard", "restore point", "progress"),
        "stamp": ("restore point",),
        "resume": ("data-loss guard", "progress"),
        "repair": (),
        "accept": (),
        "settle": (),
        "dry run": ("rehearsal", "scratch only", "progress"),
        "verify": ("scratch only",),
        "scratch": ("scratch only",),
        "sql capture": ("rehearsal", "scratch only"),
    }
    from migmagic.guard import Guard

    assert any(isinstance(o, Guard) for o in observers.build("reapply"))
    assert not any(isinstance(o, Guard) for o in observers.build("reapply", accept_data_loss=True))


def test_every_locked_run_names_a_row_of_the_table() -> None:
    """Every ``run.locked``/``run.migrate`` call in the package names its command by a row of the table."""
    rows = set(observers.TABLE) | {"upgrade", "downgrade", "stamp"}
    found: list[tuple[str, str]] = []
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("locked", "migrate", "build"):
                names = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                names += [k.value.value for k in node.keywords if k.arg == "row" and isinstance(k.value, ast.Constant)]
                found += [(path.name, n) for n in names if n not in ("",)]
    assert found, "no call found: the test looks in the wrong place"
    assert [f for f in found if f[1] not in rows] == []


@pytest.mark.parametrize("kind", DATABASES)
def test_reapply_that_would_drop_rows_is_refused_without_accept_data_loss(kind: str, workdir: Path, tmp_path: Path) -> None:
    """The old code's downgrade drops a table holding 100 rows: --reapply refuses, as upgrade and downgrade do."""
    for url in fresh_database(kind, tmp_path):
        m = Migrator.init(url)
        try:
            written = m.revision("create events", EVENTS, apply=True)
            _fill(url, "events", 100)
            path = Path(m.scripts().info(written.revision).path)
            before = path.read_bytes()
            with pytest.raises(DataLossRefused) as refused:
                m.revision("create events", EVENTS_WIDER, reapply=True)
            text = str(refused.value)
            assert "100 rows of table events" in text and "--accept-data-loss" in text, text
            assert _count(url, "events") == 100
            assert path.read_bytes() == before
            assert version(url) == {written.revision}
            # Accepted on purpose, it runs: the rows go with the old code's downgrade.
            done = m.revision("create events", EVENTS_WIDER, reapply=True, accept_data_loss=True)
            assert done.applied is not None and _count(url, "events") == 0
            assert version(url) == {written.revision}
        finally:
            m.close()


def test_reapply_refused_in_the_notebook(ip_empty: Any, sqlite_url: str) -> None:
    ip_empty.ok(f"%migrate init {sqlite_url}")
    ip_empty.ok(f'%%revision -m "create events" --apply\n{EVENTS}')
    _fill(sqlite_url, "events", 3)
    refused = ip_empty.run(f'%%revision -m "create events" --reapply\n{EVENTS_WIDER}')
    assert refused.failed and "DataLossRefused" in refused.output and "--reapply --accept-data-loss" in refused.output, refused.output
    assert _count(sqlite_url, "events") == 3
    ip_empty.ok(f'%%revision -m "create events" --reapply --accept-data-loss\n{EVENTS_WIDER}')
    assert _count(sqlite_url, "events") == 0


# --------------------------------------------------------------------------- the version table by Alembic's rules only


def _graph(m: Migrator) -> dict[str, str]:
    """Two roots with a dependency across them, a branch point, a merge: what Alembic's bookkeeping has rules for."""
    ids: dict[str, str] = {}

    def rev(name: str, **where: Any) -> None:
        ids[name] = m.revision(name, table_revision(name), **where).revision

    rev("s1", head="base", branch_label="shared")
    rev("a1", head="base", branch_label="app")
    rev("a2", head=ids["a1"], depends_on=ids["s1"])
    rev("b1", head=ids["a2"])
    rev("c1", head=ids["a2"])
    ids["m1"] = m.merge([ids["b1"], ids["c1"]], "join b and c").revision
    return ids


def _plans(ids: dict[str, str]) -> list[tuple[str, str]]:
    return [
        ("upgrade", ids["a2"]),  # a2 depends on s1: both come up
        ("downgrade", ids["a1"]),  # s1 stays: Alembic keeps it in the version table
        ("upgrade", "heads"),  # through the branch point and the merge
        ("downgrade", ids["b1"]),  # an unmerge: c1 stays
        ("downgrade", ids["a2"]),  # at the branch point
        ("upgrade", "heads"),
        ("downgrade", "base"),
    ]


@pytest.mark.parametrize("kind", DATABASES)
def test_replay_on_and_off_leave_the_version_table_plain_alembic_leaves(kind: str, workdir: Path, tmp_path: Path) -> None:
    """The same plans on four databases: plain Alembic; migmagic with replay off; with replay on, twice (the second replays)."""
    dirs = [tmp_path / n for n in ("plain", "off", "record", "replay")]
    for d in dirs:
        d.mkdir()
    with (
        contextlib_chain(fresh_database(kind, dirs[0])) as plain_url,
        contextlib_chain(fresh_database(kind, dirs[1])) as off_url,
        contextlib_chain(fresh_database(kind, dirs[2])) as record_url,
        contextlib_chain(fresh_database(kind, dirs[3])) as replay_url,
    ):
        author = Migrator.init(f"sqlite:///{tmp_path / 'author.db'}")
        ids = _graph(author)
        folder = author.folder
        author.close()
        off = Migrator(off_url, folder, replay=False)
        record, again = Migrator(record_url, folder), Migrator(replay_url, folder)
        try:
            for command, target in _plans(ids):
                plain.run(plain_url, folder, command, target)
                expected = version(plain_url)
                for m, url in ((off, off_url), (record, record_url), (again, replay_url)):
                    getattr(m, command)(target, accept_data_loss=True)
                    assert version(url) == expected, (command, target, url)
        finally:
            for m in (off, record, again):
                m.close()


@pytest.mark.parametrize("kind", DATABASES)
def test_a_failure_report_names_the_version_table_alembic_left(kind: str, workdir: Path, tmp_path: Path) -> None:
    """After a branch point, a failing step: what the report says the version table holds is what it holds."""
    for url in fresh_database(kind, tmp_path):
        m = Migrator.init(url)
        try:
            a = m.revision("a", table_revision("a")).revision
            b1 = m.revision("b1", table_revision("b1"), head=a).revision
            m.revision("c1", table_revision("c1").replace('op.create_table("c1"', 'op.create_table("b1"'), head=a)
            m.upgrade(b1)
            with pytest.raises(MigrationFailed) as failed:
                m.upgrade("heads")
            held = sorted(version(url))
            assert held == [b1]
            if kind == "mariadb":  # steps commit one by one: the report names the version table as it is
                assert f"the version table is at {b1}" in str(failed.value), str(failed.value)
        finally:
            m.close()


def _half_applied_downgrade_at_a_branch_point(url: str) -> tuple[Migrator, dict[str, str]]:
    m = Migrator.init(url)
    ids = {"a": m.revision("a", table_revision("a")).revision}
    ids["b1"] = m.revision(
        "b1", table_revision("b1").replace('op.drop_table("b1")', 'op.drop_table("b1")\n    raise RuntimeError("stops after its DDL")'),
        head=ids["a"], branch_label="bee",
    ).revision
    ids["c1"] = m.revision("c1", table_revision("c1"), head=ids["a"]).revision
    m.upgrade("heads")
    with pytest.raises(MigrationFailed):
        m.downgrade("bee@-1")
    return m, ids


def test_repair_at_a_branch_point_writes_what_alembic_would(mariadb_url: str, workdir: Path, tmp_path: Path) -> None:
    """b1 and c1 are children of a; b1's downgrade stopped after its DDL. Recorded as done, the table holds (c1), as Alembic's."""
    m, ids = _half_applied_downgrade_at_a_branch_point(mariadb_url)
    try:
        assert m.status().half_applied
        said = m.repair(ids["b1"], applied=False)
        assert version(mariadb_url) == {ids["c1"]}, said
        assert f"the version table is at {ids['c1']}." in str(said)
    finally:
        m.close()
    # What plain Alembic leaves when that downgrade completes: the same folder, b1's downgrade not stopping.
    fixed = tmp_path / "fixed"
    _copy_folder(m.folder, fixed)
    for path in (fixed / "versions").glob("*.py"):
        path.write_text(path.read_text().replace('\n    raise RuntimeError("stops after its DDL")', ""))
    for url in fresh_database("mariadb", tmp_path / "plain"):
        plain.run(url, fixed, "upgrade", "heads")
        plain.run(url, fixed, "downgrade", "bee@-1")
        assert version(url) == {ids["c1"]}


def _copy_folder(folder: Path, to: Path) -> None:
    import shutil

    shutil.copytree(folder, to, ignore=shutil.ignore_patterns("__pycache__"))


# --------------------------------------------------------------------------- commands declared once


def test_each_command_calls_a_method_that_takes_its_options() -> None:
    import inspect

    for command in [*COMMANDS.values(), REVISION_CELL]:
        if command.name == "init":
            continue
        methods = {"": getattr(Migrator, command.method)} | {m.flag: getattr(Migrator, m.method) for m in command.modes}
        params = {flag: set(inspect.signature(fn).parameters) for flag, fn in methods.items()}
        mode_flags = {m.flag for m in command.modes}
        for flags, kwargs in command.args:
            dest = kwargs.get("dest") or next((f for f in flags if f.startswith("--")), flags[0]).lstrip("-").replace("-", "_")
            if dest in mode_flags or (command.name == "%%revision" and dest == "body"):
                continue
            owner = command.only.get(dest)
            takers = [params[owner]] if owner is not None else list(params.values())
            assert any(dest in p for p in takers), f"{command.name}: {flags} has no parameter {dest!r} in {methods}"
    assert set(COMMANDS) >= {"upgrade", "downgrade", "stamp", "history", "verify", "restore", "repair", "resume"}


def _fixes_in_the_code() -> list[Fix]:
    """Every ``Fix(...)`` the package can suggest, with placeholders for the values it fills in at run time."""
    fixes = []
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Fix":
                words = [*node.args, *(k.value for k in node.keywords)]
                keys = [k.arg for k in node.keywords]
                command = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else "upgrade"
                args: tuple[str, ...] = ()
                options: tuple[tuple[str, Any], ...] = ()
                arg_node = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "args"), None)
                if isinstance(arg_node, ast.Tuple):
                    args = tuple("abc123" for _ in arg_node.elts)
                elif arg_node is not None:
                    args = ("abc123",)
                opt_node = node.args[2] if len(node.args) > 2 else next((k.value for k in node.keywords if k.arg == "options"), None)
                if isinstance(opt_node, ast.Tuple):
                    options = tuple((e.elts[0].value, e.elts[1].value) for e in opt_node.elts if isinstance(e, ast.Tuple))  # type: ignore[attr-defined]
                cell = "cell" in keys and any(isinstance(w, ast.Constant) and w.value is True for w in words)
                fixes.append(Fix(command, args, options, cell=cell))
    return fixes


class _Recorder:
    """Stands in for a Migrator: takes any method call, records it."""

    def __getattr__(self, name: str) -> Any:
        import inspect

        method = getattr(Migrator, name)

        signature = inspect.signature(method)

        def called(*args: Any, **kwargs: Any) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
            signature.bind(None, *args, **kwargs)  # the call fits the method
            return name, args, kwargs

        called.__signature__ = signature.replace(parameters=list(signature.parameters.values())[1:])  # type: ignore[attr-defined]
        return called


def test_every_fix_the_errors_suggest_parses_and_calls_its_method() -> None:
    from migmagic.magics import _command_parser, _revision_parser, _split

    fixes = _fixes_in_the_code()
    assert len(fixes) > 15
    for fix in fixes:
        line = fix.magic()
        if fix.cell:
            flags = line.removeprefix("re-run the cell").removeprefix(" with").split()
            args = _revision_parser().parse_args(["-m", "x", *flags])
            call(REVISION_CELL, {**vars(args), "body": "def upgrade():\n    pass\n"}, _Recorder(), {})
            continue
        words = _split(line)
        assert words[0] == "%migrate", line
        name, rest = words[1], words[2:]
        assert name in COMMANDS, line
        parsed = _command_parser(name).parse_args(rest)
        call(COMMANDS[name], vars(parsed), _Recorder(), {})
        python = fix.python()
        method = python.split("(")[0]
        assert hasattr(Migrator, method), python


@pytest.mark.parametrize(
    "line, said",
    [
        ("%migrate upgrade head --sql --dry-run", "--sql and --dry-run do not go together: give one."),
        ("%migrate upgrade head --sample 1000", "--sample only applies to upgrade --dry-run."),
        ("%migrate upgrade head --sample 999", "--sample only applies to upgrade --dry-run."),
        ("%migrate downgrade -1 --copy", "--copy only applies to downgrade --dry-run."),
        ("%migrate upgrade head --dry-run --accept-data-loss", "--accept-data-loss does not apply to upgrade --dry-run."),
        ("%migrate revision -m x --metadata Base", "--metadata only applies to revision --autogenerate."),
        ("%migrate restore 2 --list", "POINT does not apply to restore --list."),
    ],
)
def test_options_that_do_not_go_together_are_refused_in_one_sentence(ip_empty: Any, sqlite_url: str, line: str, said: str) -> None:
    ip_empty.ok(f"%migrate init {sqlite_url}")
    run = ip_empty.run(line)
    assert run.failed and isinstance(run.error, UsageError)
    first = run.output.strip().splitlines()[0]
    assert first.startswith(f"UsageError: {said}"), first
    assert len(run.output.strip().splitlines()) == 1


def contextlib_chain(gen: Any) -> Any:
    """A ``fresh_database`` generator as a context manager."""
    import contextlib

    @contextlib.contextmanager
    def managed() -> Any:
        url = next(gen)
        try:
            yield url
        finally:
            with contextlib.suppress(StopIteration):
                next(gen)

    return managed()

