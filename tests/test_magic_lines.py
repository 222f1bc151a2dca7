"""Magic lines read as a shell reads them: quotes kept together, a trailing ``# comment`` dropped."""

from __future__ import annotations

import socket
from pathlib import Path

import pandas as pd
from conftest import EVENTS, Shell

from migmagic.errors import ConnectionFailed


def test_init_with_a_trailing_comment(ip_empty: Shell, workdir: Path) -> None:
    status = ip_empty.ok("%migrate init sqlite:///app.db  # writes migrations/")
    assert "sqlite:///app.db" in repr(status) and "writes" not in repr(status)
    assert (workdir / "migrations" / "alembic.ini").is_file()
    assert (workdir / "app.db").is_file()


def test_read_commands_with_a_trailing_comment(ip_empty: Shell) -> None:
    url = ip_empty.ns["url"] = "sqlite:///app.db"
    ip_empty.ok(f"%migrate init {url} # c")
    ip_empty.ok(f'%%revision -m "create events table" --apply  # and upgrade\n{EVENTS}')
    history = ip_empty.ok("%migrate history  # comment")
    assert isinstance(history, pd.DataFrame) and list(history["message"]) == ["create events table"]
    assert "pending                   none" in repr(ip_empty.ok("%migrate  # just the status"))
    assert "Nothing to upgrade" in repr(ip_empty.ok("%migrate upgrade head\t# again"))


def test_hash_inside_quotes_stays_in_the_message(ip_empty: Shell) -> None:
    ip_empty.ok("%migrate init sqlite:///app.db")
    ip_empty.ok(f'%%revision -m "a # b"\n{EVENTS}')
    ip_empty.ok("%%revision -m 'c #d' --head base  # a second root\ndef upgrade():\n    pass\n")
    messages = set(ip_empty.ok("%migrate history")["message"])
    assert messages == {"a # b", "c #d"}


def test_hash_inside_a_word_is_not_a_comment(ip_empty: Shell) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = ip_empty.ns["url"] = f"postgresql+psycopg://mm_user:p#w@127.0.0.1:{port}/app"
    run = ip_empty.run(f"%migrate init {url}  # the server is down")
    assert isinstance(run.error, ConnectionFailed), run.output
    assert f"Cannot connect to postgresql+psycopg://mm_user:***@127.0.0.1:{port}/app:" in run.output
    assert "p#w" not in run.output and "the server is down" not in run.output
    assert ip_empty.ok("%migrate init sqlite:///with#hash.db") is not None
    assert Path("with#hash.db").is_file()
