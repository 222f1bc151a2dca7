"""Every command is explained (%migrate -h, %migrate?, COMMAND -h, the README) and completes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EVENTS, Shell

from migmagic.magics import COMMANDS

COMMANDS_PAGE = (Path(__file__).resolve().parent.parent / "docs" / "commands" / "index.md").read_text()


def test_overview_lists_every_command(ip_empty: Shell) -> None:
    out = ip_empty.run("%migrate -h").output
    for name, command in COMMANDS.items():
        assert f"  {name}" in out and command.help in out
    assert "%%revision" in out


def test_question_mark_shows_the_same_overview(ip_empty: Shell) -> None:
    doc = ip_empty.ip.find_line_magic("migrate").__doc__
    for name in COMMANDS:
        assert f"  {name}" in doc


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_has_help_for_every_option(ip_empty: Shell, name: str) -> None:
    help_text, args = COMMANDS[name].help, COMMANDS[name].args
    assert help_text.endswith(".")
    for _flags, kwargs in args:
        assert kwargs.get("help"), f"{name} {_flags} has no help"
    run = ip_empty.run(f"%migrate {name} -h")
    assert not run.failed
    assert f"usage: %migrate {name}" in run.output and help_text in " ".join(run.output.split())


@pytest.mark.parametrize("name", list(COMMANDS))
def test_docs_list_each_command(name: str) -> None:
    """The documentation's table of commands (each command's own page is made from its -h: tests/test_docs.py)."""
    assert f"| `{name}" in COMMANDS_PAGE or f", `{name}`" in COMMANDS_PAGE or f"/ `{name}" in COMMANDS_PAGE


def test_revision_cell_help(ip_empty: Shell) -> None:
    run = ip_empty.run("%revision -h")
    assert "usage: %%revision" in run.output and "--reapply" in run.output


def test_tab_completes_commands_and_revision_ids(ip_empty: Shell, sqlite_url: str) -> None:
    ip_empty.ns["TEST_DB_URL"] = sqlite_url
    ip_empty.ok(f"%migrate init {sqlite_url}")
    first = ip_empty.ok(f'%%revision -m "create events table"\n{EVENTS}')
    _, matches = ip_empty.ip.complete("up", "%migrate up")
    assert "upgrade" in matches
    _, matches = ip_empty.ip.complete(first.revision[:3], f"%migrate upgrade {first.revision[:3]}")
    assert first.revision in matches


def test_load_ext_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from IPython.testing.globalipapp import start_ipython\n"
        "ip = start_ipython()\n"
        "ip.run_line_magic('load_ext', 'migmagic')\n"
        "assert ip.find_line_magic('migrate') and ip.find_cell_magic('revision')\n"
        "print(sorted(m for m in ('alembic', 'sqlalchemy', 'pandas', 'mako') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
