"""The README's commands work as written, after its install command, in a shell with no
virtual environment activated."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from nbrun import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent
# Programs a fresh shell has; everything else comes from the README's .venv.
SYSTEM = {"python3", "bash", "export", "cd"}
TOOLS = {"pip", "python", "alembic", "jupyter", "pytest", "ipython", "ruff", "mypy"}


def shell_commands() -> list[str]:
    """Each command of the README's ``bash`` blocks and of its inline code that runs a program."""
    lines = [
        line
        for block in re.findall(r"```bash\n(.*?)```", README, re.DOTALL)
        for line in block.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    prose = [line for line in README.splitlines() if not line.startswith("|")]
    for span in re.findall(r"`([^`\n]+)`", "\n".join(prose)):
        words = span.split()
        first = next((w for w in words if "=" not in w), "")
        # A command line to type (options, a setting), not a command named in a sentence (`alembic check`).
        runnable = re.search(r"(^|\s)-[cm]\s|^[A-Z_]+=", span)
        if Path(first).name in TOOLS | {"python3"} and runnable:
            lines.append(span)
    return [part.strip() for line in lines for part in re.split(r"&&|;", line.split(" #")[0]) if part.strip()]


def program(command: str) -> str:
    words = [w for w in shlex.split(command) if not re.match(r"^[A-Z_]+=", w)]
    return words[0]


def test_every_readme_command_runs_from_the_venv() -> None:
    commands = shell_commands()
    assert any("alembic -c migrations/alembic.ini current" in c for c in commands)
    wrong = [c for c in commands if program(c) not in SYSTEM and not program(c).startswith(".venv/bin/")]
    assert wrong == [], "these need an activated virtual environment"
    assert all(c.startswith("python3 -m venv") for c in commands if program(c) == "python3")


def test_readme_alembic_line_runs_after_the_quick_example(workdir: Path) -> None:
    """The README's example revision, then its alembic line, in a shell whose PATH has no venv."""
    from migmagic import Migrator

    body = re.search(r'```python\n%%revision -m "create events table"\n(.*?)```', README, re.DOTALL)
    assert body is not None
    m = Migrator.init("sqlite:///app.db")
    rev = m.revision("create events table", body.group(1)).revision
    m.upgrade("head")
    m.close()
    [line] = [c for c in shell_commands() if "alembic -c migrations/alembic.ini current" in c]
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    done = subprocess.run(
        ["bash", "-c", line.replace(".venv/bin/", f"{BIN}/")], cwd=workdir, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"{rev} (head)" in done.stdout
