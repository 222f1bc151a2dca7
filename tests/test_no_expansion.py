"""IPython's ``$name`` and ``{expression}`` expansion is off on both magics: what is typed is what is used."""

from __future__ import annotations

from pathlib import Path

from conftest import EVENTS, Shell


def test_dollar_and_braces_in_a_revision_message_stay_as_typed(ip_empty: Shell, sqlite_url: str) -> None:
    ip_empty.ok(f"%migrate init {sqlite_url}")
    ip_empty.ns["x"] = "EXPANDED"
    written = ip_empty.ok(f'%%revision -m "costs $5 {{x}} $x"\n{EVENTS}')
    assert written.message == "costs $5 {x} $x"
    source = Path(written.path).read_text()
    assert source.startswith('"""costs $5 {x} $x\n') and "EXPANDED" not in source
    # The line magic too, and Run All finds the same revision by its message.
    again = ip_empty.ok('%migrate revision -m "costs $5 {x} $x"')
    assert (again.action, again.revision) == ("unchanged", written.revision)


def test_dollar_and_braces_in_a_url_stay_as_typed(ip_empty: Shell) -> None:
    ip_empty.ns["w"] = "EXPANDED"
    run = ip_empty.run("%migrate init 'postgresql://u:pa$$w{0}rd@127.0.0.1:1/x'")
    assert run.failed and "ConnectionFailed" in run.output, run.output
    assert "pa$$w{0}rd" not in run.output and "EXPANDED" not in run.output
    import migmagic.magics

    assert migmagic.magics._loaded[id(ip_empty.ip)].migrator.db.url == "postgresql://u:pa$$w{0}rd@127.0.0.1:1/x"
