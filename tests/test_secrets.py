"""Passwords never appear: not in output, errors, reprs, log records, tables or saved notebooks.

A real database user with a password holding ``@``, ``/`` and ``%`` is created
for each test (and dropped after); every text migmagic produces is searched for
the password, its URL-quoted spellings and its fragments.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import EVENTS, Shell, _admin

from migmagic.errors import MigmagicError

PASSWORD = "Qz7Kwm@Xv9Tyb/Lp3Hdn%Gr4Rtq"
LEAKS = sorted({PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD), *re.split(r"[@/%]", PASSWORD)}, key=len, reverse=True)


def assert_no_secret(text: str, where: str = "") -> None:
    for leak in LEAKS:
        assert leak not in text, f"{leak!r} leaked in {where}: ...{text[max(0, text.find(leak) - 80): text.find(leak) + 80]}..."


def _user_url(kind: str, admin_url: str, quoted: bool, password: str = PASSWORD) -> Iterator[str]:
    """A login with ``password`` that owns the fresh database ``admin_url`` names."""
    import sqlalchemy as sa

    base = sa.engine.make_url(admin_url)
    user = f"mm_u_{uuid.uuid4().hex[:8]}"
    engine = _admin(kind)
    literal = password.replace(":", "\\:")  # not a bind parameter to sa.text
    with engine.connect() as conn:
        if kind == "postgresql":
            conn.execute(sa.text(f"CREATE ROLE {user} LOGIN PASSWORD '{literal}'"))
            conn.execute(sa.text(f"ALTER DATABASE {base.database} OWNER TO {user}"))
        else:
            conn.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{literal}'"))
            conn.execute(sa.text(f"GRANT ALL ON {base.database}.* TO '{user}'@'%'"))
    pw = quote(password, safe="") if quoted else password
    try:
        yield f"{base.drivername}://{user}:{pw}@{base.host}:{base.port}/{base.database}"
    finally:
        with engine.connect() as conn:
            if kind == "postgresql":
                conn.execute(sa.text(f"ALTER DATABASE {base.database} OWNER TO postgres"))
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {base.database} WITH (FORCE)"))
                conn.execute(sa.text(f"DROP ROLE {user}"))
            else:
                conn.execute(sa.text(f"DROP USER '{user}'@'%'"))


@pytest.fixture(params=[("postgresql", True), ("postgresql", False), ("mariadb", True), ("mariadb", False)], ids=["pg-quoted", "pg-raw", "mariadb-quoted", "mariadb-raw"])
def secret_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A URL whose password holds '@', '/' and '%': percent-encoded, or typed raw."""
    from conftest import fresh_database

    kind, quoted = request.param
    for admin_url in fresh_database(kind, tmp_path):
        yield from _user_url(kind, admin_url, quoted)


def _texts(obj: Any) -> list[str]:
    out = [repr(obj), str(obj)]
    if hasattr(obj, "_repr_html_"):
        out.append(obj._repr_html_())
    if isinstance(obj, BaseException) and hasattr(obj, "_render_traceback_"):
        out += obj._render_traceback_()
    return out


def test_no_password_in_results_errors_reprs_or_logs(workdir: Path, secret_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from migmagic import Migrator

    caplog.set_level(logging.DEBUG)
    for name in ("sqlalchemy.engine", "sqlalchemy.pool", "alembic", "migmagic"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    texts: list[str] = []
    m = Migrator.init(secret_url)
    try:
        texts += [repr(m), repr(m.db), repr(m.location), m.db.masked_url]
        texts += _texts(m.status())
        m.revision("create events table", EVENTS)
        texts += _texts(m.upgrade("head"))
        texts += _texts(m.history()) + _texts(m.log()) + _texts(m.current()) + _texts(m.heads())
        texts += _texts(m.downgrade("base")) + _texts(m.status())
        texts += [(m.folder / "alembic.ini").read_text()]
        wrong_port = re.sub(r":\d+/", ":1/", secret_url)
        wrong_db = secret_url.rsplit("/", 1)[0] + "/no_such_db"
        errors: list[MigmagicError] = []
        for call in (lambda: m.upgrade("nosuchrev"), lambda: Migrator(wrong_port).status(), lambda: Migrator(wrong_db).upgrade("head")):
            with pytest.raises(MigmagicError) as caught:
                call()
            errors.append(caught.value)
            texts += _texts(caught.value)
        assert "Cannot connect to" in str(errors[1]) and "***" in str(errors[1])
    finally:
        m.close()
        for name in ("sqlalchemy.engine", "sqlalchemy.pool", "alembic", "migmagic"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    assert caplog.records, "the log capture saw nothing"
    texts += [r.getMessage() for r in caplog.records]
    for i, text in enumerate(texts):
        assert_no_secret(text, f"text {i}")


def test_password_typed_on_a_magic_line_earns_a_warning(ip_empty: Shell, secret_url: str) -> None:
    url = ip_empty.ns["url"] = secret_url
    run = ip_empty.run(f"%migrate init {url}")
    assert not run.failed, run.output
    assert "Warning: this line holds a password, which is saved with the notebook. " in run.output
    assert "Put the URL in the DATABASE_URL environment variable instead." in run.output
    assert_no_secret(run.output + repr(run.result) + run.result._repr_html_(), "init output")


# ---------------------------------------------------------------- awkward passwords

# Passwords SQLAlchemy's URL parser accepts raw ('?', '#', ':') or that need the
# last '@' ('@', '/'), alone and together, first, last and doubled.
AWKWARD = [
    "Qk?Wz9",
    "Qk@Wz?Vx",
    "Qk?Wz@Vx",
    "Qk/Wz?Vx",
    "Qk%Wz?Vx",
    "Qk#Wz?Vx",
    "Qk:Wz?Vx",
    "Qk#Wz",
    "Qk:Wz@Vx/Jm",
    "?Qkwz",
    "Qkwz?",
    "Qk??Wz",
    "Qk?@/%#:Vx",
    "@Qk?Wz#Vx:Jm/Yp%Rt@",
]
HOSTS = [
    # (after the '@', as typed; host, port, database, query as SQLAlchemy should read them)
    ("db.example/app", "db.example", None, "app", {}),
    ("db.example:5432/app?sslmode=require&application_name=nb", "db.example", 5432, "app", {"sslmode": "require", "application_name": "nb"}),
    ("[::1]:5433/app", "::1", 5433, "app", {}),
]


def leaks_of(password: str) -> list[str]:
    """The password's spellings, and every piece of it four characters or longer."""
    pieces = {password[i:j] for i in range(len(password)) for j in range(i + 4, len(password) + 1)}
    return sorted({password, quote(password, safe=""), quote(password), *pieces}, key=len, reverse=True)


def assert_hidden(password: str, text: str, where: str = "") -> None:
    for leak in leaks_of(password):
        assert leak not in text, f"{leak!r} of {password!r} leaked in {where}: {text!r}"


def _typed(password: str, quoted: bool) -> str:
    return quote(password, safe="") if quoted else password


@pytest.mark.parametrize("quoted", [False, True], ids=["raw", "quoted"])
@pytest.mark.parametrize("password", AWKWARD)
def test_awkward_password_is_masked_and_reaches_sqlalchemy_whole(workdir: Path, password: str, quoted: bool) -> None:
    from sqlalchemy.engine import make_url

    from migmagic import Migrator, settings

    for after, host, port, database, query in HOSTS:
        url = f"postgresql+psycopg://mm_user:{_typed(password, quoted)}@{after}"
        assert settings.mask_url(url) == f"postgresql+psycopg://mm_user:***@{after}"
        assert settings.password_of(url) == password
        parsed = make_url(settings.engine_url(url))
        assert (parsed.username, parsed.password, parsed.host, parsed.port, parsed.database, dict(parsed.query)) == (
            "mm_user", password, host, port, database, query,
        )
        said = f"failed for {password} ({quote(password, safe='')}, {quote(password)}, {parsed.render_as_string(hide_password=False)})"
        assert_hidden(password, settings.scrub(said, url), "scrub")
        m = Migrator(url)
        assert_hidden(password, " ".join([repr(m), repr(m.db), repr(m.location), m.db.masked_url, m.location.masked_url]), "reprs")


def test_user_name_with_at_sign_keeps_its_password_hidden() -> None:
    from migmagic import settings

    url = "postgresql://app@server:Qk?Wz@Vx@server.example/app"
    assert settings.mask_url(url) == "postgresql://app@server:***@server.example/app"
    assert settings.password_of(url) == "Qk?Wz@Vx"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "mysql+pymysql"])
@pytest.mark.parametrize("quoted", [False, True], ids=["raw", "quoted"])
@pytest.mark.parametrize("password", AWKWARD)
def test_unreachable_server_error_hides_awkward_password(workdir: Path, password: str, quoted: bool, scheme: str) -> None:
    from migmagic import Migrator
    from migmagic.errors import ConnectionFailed

    port = _closed_port()
    url = f"{scheme}://mm_user:{_typed(password, quoted)}@127.0.0.1:{port}/app"
    m = Migrator.init(url)
    with pytest.raises(ConnectionFailed) as caught:
        m.status()
    texts = _texts(caught.value) + [caught.value.url, (workdir / "migrations" / "alembic.ini").read_text()]
    # The driver was asked for the right host and port: the password was not cut short.
    assert str(caught.value).startswith(f"Cannot connect to {scheme}://mm_user:***@127.0.0.1:{port}/app: ")
    reason = str(caught.value).split(": ", 1)[1]
    assert "127.0.0.1" in reason and "refused" in reason.lower(), reason
    for i, text in enumerate(texts):
        assert_hidden(password, text, f"text {i}")


@pytest.mark.parametrize("password", AWKWARD)
def test_init_line_with_awkward_password_warns_and_keeps_it_out_of_the_ini(ip_empty: Shell, password: str) -> None:
    url = ip_empty.ns["url"] = f"postgresql+psycopg://mm_user:{password}@127.0.0.1:{_closed_port()}/app"
    run = ip_empty.run(f"%migrate init {url}")
    assert isinstance(run.error, MigmagicError) and "ConnectionFailed: Cannot connect to" in run.output, run.output
    assert "Warning: this line holds a password, which is saved with the notebook. " in run.output
    ini = Path("migrations/alembic.ini").read_text()
    assert "# sqlalchemy.url is not written: the URL has a password. Set DATABASE_URL." in ini
    assert_hidden(password, run.output, "init output")
    assert_hidden(password, ini, "alembic.ini")


@pytest.fixture(params=[("postgresql", "Qk?@/%#:Vx"), ("postgresql", "Qk@Wz?Vx"), ("mariadb", "Qk?@/%#:Vx")], ids=["pg-all", "pg-at-question", "mariadb-all"])
def awkward_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[str, str]]:
    """A real login whose password, typed raw, holds '?' with '@', '/', '%', '#' or ':'."""
    from conftest import fresh_database

    kind, password = request.param
    for admin_url in fresh_database(kind, tmp_path):
        for url in _user_url(kind, admin_url, False, password):
            yield url, password


def test_awkward_password_connects_and_never_shows(workdir: Path, awkward_url: tuple[str, str], caplog: pytest.LogCaptureFixture) -> None:
    from migmagic import Migrator

    url, password = awkward_url
    caplog.set_level(logging.DEBUG, logger="migmagic")
    m = Migrator.init(url)
    try:
        texts = [repr(m), m.db.masked_url, (m.folder / "alembic.ini").read_text()]
        m.revision("create events table", EVENTS)
        texts += _texts(m.upgrade("head")) + _texts(m.status()) + _texts(m.history())
        with pytest.raises(MigmagicError) as caught:
            Migrator(url.rsplit("/", 1)[0] + "/no_such_db").status()
        texts += _texts(caught.value)
    finally:
        m.close()
    assert "***" in texts[1] and "Upgraded" in texts[3]
    texts += [r.getMessage() for r in caplog.records]
    for i, text in enumerate(texts):
        assert_hidden(password, text, f"text {i}")


NOTEBOOK = [
    "%load_ext migmagic",
    "import logging\nlogging.basicConfig(filename='kernel.log', level=logging.DEBUG, force=True)\n"
    "logging.getLogger('sqlalchemy').setLevel(logging.DEBUG)",
    "%migrate init",
    f'%%revision -m "create events table"\n{EVENTS}',
    "%migrate upgrade head",
    "%migrate history",
    "%migrate status",
    "%migrate log",
    "%migrate current",
    "from migmagic import Migrator\nm = Migrator()\nprint(repr(m), repr(m.db), repr(m.location))\nm",
    "%migrate upgrade nosuchrev",
    "%migrate downgrade base",
    "import os\nbad = os.environ['DATABASE_URL'].replace(':5432/', ':5439/')\n%config Migrate.url = bad",
    "%migrate status",
    "%migrate upgrade head",
    "Migrator(bad).upgrade('head')",
    "%migrate init $bad",
]


def _kernelspec(root: Path) -> Path:
    """A kernelspec named python3 that runs this venv's Python."""
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "migmagic test", "language": "python"})
    )
    return root


@pytest.mark.notebook
def test_a_real_notebook_never_shows_or_saves_the_password(tmp_path: Path, workdir: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    user = _user_url("postgresql", pg_url, quoted=True)
    try:
        _run_notebook(tmp_path, workdir, next(user), monkeypatch)
    finally:
        user.close()


def _run_notebook(tmp_path: Path, workdir: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("JUPYTER_PATH", str(_kernelspec(tmp_path / "jupyter")))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in NOTEBOOK]
    client = NotebookClient(nb, kernel_name="python3", timeout=180, allow_errors=True, resources={"metadata": {"path": str(workdir)}})
    client.execute()
    saved = workdir / "secrets.ipynb"
    nbformat.write(nb, saved)

    outputs = {i: json.dumps(c.outputs) for i, c in enumerate(nb.cells)}
    errors = {i: [o for o in c.outputs if o["output_type"] == "error"] for i, c in enumerate(nb.cells)}
    # The notebook really ran: the upgrade happened, the bad target and the bad port failed.
    assert "Upgraded postgresql+psycopg://" in outputs[4] and ":***@" in outputs[4]
    assert [i for i, e in errors.items() if e] == [10, 13, 14, 15, 16], outputs
    assert "RevisionNotFound" in outputs[10]
    assert all("ConnectionFailed" in outputs[i] for i in (13, 14, 15, 16))
    assert "'$bad' is not a database URL" in outputs[16]  # '$name' is not expanded on a %migrate line
    for i, text in outputs.items():
        assert_no_secret(text, f"cell {i}: {NOTEBOOK[i][:30]!r}")
    assert_no_secret(saved.read_text(encoding="utf-8"), "the saved notebook")
    log = (workdir / "kernel.log").read_text()
    assert "SELECT" in log  # SQLAlchemy's statements were logged
    assert_no_secret(log, "the kernel's log")
    for path in (workdir / "migrations").rglob("*"):
        if path.is_file():
            assert_no_secret(path.read_text(encoding="utf-8", errors="replace"), str(path))


def test_config_shows_the_url_masked_and_still_connects_with_it(ip_empty: Shell, pg_url: str) -> None:
    password = "Qk?@/%#:Vx"
    for url in _user_url("postgresql", pg_url, False, password):
        ip_empty.ns["url"] = url
        ip_empty.ok("%config Migrate.url = url")
        shown = ip_empty.run("%config Migrate")
        assert not shown.failed, shown.output
        masked = url.split(":" + password)[0] + ":***@" + url.rsplit("@", 1)[1]
        assert f"Current: {masked!r}" in shown.output
        value = ip_empty.run("%config Migrate.url")
        assert value.result == url and repr(masked) in value.output  # the value is the URL itself...
        formatted = ip_empty.ip.display_formatter.format(value.result)[0]["text/plain"]
        assert formatted == repr(masked)  # ...shown masked
        status = ip_empty.ok("%migrate status")  # and the session connects with it
        assert "database" in repr(status) and masked in repr(status)
        for text in (shown.output, value.output, formatted, repr(status)):
            assert_hidden(password, text, "%config")


RAISES_WITH_URL = '''def upgrade():
    url = op.get_bind().engine.url
    raise RuntimeError(f"cannot reach {url.render_as_string(hide_password=False)} as {url.password}")


def downgrade():
    pass
'''

SQL_WITH_PASSWORD = '''def upgrade():
    op.execute(f"SELECT '{op.get_bind().engine.url.password}' FROM no_such_table")


def downgrade():
    pass
'''


def test_revision_error_quoting_the_url_is_scrubbed(workdir: Path, secret_url: str) -> None:
    from migmagic import Migrator
    from migmagic.errors import MigrationFailed

    m = Migrator.init(secret_url)
    try:
        m.revision("fails", RAISES_WITH_URL)
        with pytest.raises(MigrationFailed) as raised:
            m.upgrade("head")
        shown = raised.value._render_traceback_()  # before the file changes: the traceback quotes it
        # What plain Python (a script using the API) prints: the error and the chain under it.
        printed = ["".join(traceback.format_exception(raised.value))]
        m.revision("fails", SQL_WITH_PASSWORD)  # not applied: rewritten in place
        with pytest.raises(MigrationFailed) as failed_sql:
            m.upgrade("head")
    finally:
        m.close()
    assert shown[1] == "Traceback (revision code):" and 'raise RuntimeError(f"cannot reach' in "\n".join(shown)
    assert shown[-1].startswith("RuntimeError: cannot reach ") and ":***@" in shown[-1] and shown[-1].endswith(" as ***")
    assert PASSWORD in str(raised.value.original)  # the original is left as it was; what is shown is scrubbed
    err = failed_sql.value
    assert "no_such_table" in str(err) and "Failed statement: SELECT '***' FROM no_such_table" in str(err)
    assert err.statement == "SELECT '***' FROM no_such_table"
    assert "SELECT '***' FROM no_such_table" in err._render_traceback_()[-1]
    printed.append("".join(traceback.format_exception(err)))
    assert 'raise RuntimeError(f"cannot reach' in printed[0] and "RevisionCodeError: RuntimeError: cannot reach " in printed[0]
    assert "SELECT '***' FROM no_such_table" in printed[1]
    for i, text in enumerate(shown + _texts(raised.value) + _texts(err) + [err.statement] + printed):
        assert_no_secret(text, f"text {i}")


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_password_in_the_query_connects_and_never_shows(workdir: Path, kind: str, tmp_path: Any, ip_empty: Shell) -> None:
    """psycopg and PyMySQL also take ``?password=``: it is masked like a password in the userinfo."""
    import sqlalchemy as sa
    from conftest import fresh_database

    from migmagic import Migrator

    password = "Qk?@/%#:Vx"
    for admin_url in fresh_database(kind, tmp_path):
        for user_url in _user_url(kind, admin_url, True, password):
            u = sa.engine.make_url(user_url)
            url = f"{u.drivername}://{u.username}@{u.host}:{u.port}/{u.database}?password={quote(password, safe='')}"
            m = Migrator.init(url)
            try:
                texts = [repr(m), m.db.masked_url, (m.folder / "alembic.ini").read_text()]
                m.revision("create events table", EVENTS)
                texts += _texts(m.upgrade("head")) + _texts(m.status())
                with pytest.raises(MigmagicError) as caught:
                    Migrator(url.replace(f"/{u.database}?", "/no_such_db?")).status()
                texts += _texts(caught.value)
            finally:
                m.close()
            assert texts[1].endswith("?password=***") and "Upgraded" in texts[3]
            assert "# sqlalchemy.url is not written: the URL has a password." in texts[2]
            ip_empty.ns["url"] = url
            run = ip_empty.run(f"%migrate init {url}")
            assert "Warning: this line holds a password" in run.output, run.output
            texts.append(run.output)
            for i, text in enumerate(texts):
                assert_hidden(password, text, f"text {i}")
