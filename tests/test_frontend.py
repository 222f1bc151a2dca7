"""Who will show a generated cell: an interactive notebook, nbclient (nbconvert, papermill), terminal IPython.

Each front end is the real one: a Jupyter kernel driven as JupyterLab drives it
and as nbclient does, terminal IPython in a subprocess and at a real prompt in tmux.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nbrun import KERNEL_NAME, NOTEBOOKS, copy_to, execute, kernel_dir, texts

from migmagic.frontend import is_terminal, will_place_next_cell

BIN = Path(sys.executable).parent
PROBE = (
    "from migmagic.frontend import is_terminal, will_place_next_cell\n"
    "print('placed:', will_place_next_cell(get_ipython()), 'terminal:', is_terminal(get_ipython()))"
)
NOTE = "The code is in the next cell"


def test_no_shell_places_nothing() -> None:
    assert will_place_next_cell(None) is False
    assert is_terminal(None) is False


def test_plain_interactive_shell_places_nothing() -> None:
    code = (
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "from migmagic.frontend import is_terminal, will_place_next_cell\n"
        "shell = InteractiveShell.instance()\n"
        "print('placed:', will_place_next_cell(shell), 'terminal:', is_terminal(shell))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "placed: False terminal: False", done.stderr


def test_terminal_ipython_is_a_terminal() -> None:
    done = subprocess.run(
        [str(BIN / "ipython"), "--quick", "--no-banner", "-c", PROBE], capture_output=True, text=True, timeout=60
    )
    assert "placed: False terminal: True" in done.stdout, done.stderr


@pytest.mark.notebook
def test_nbclient_places_no_cell(tmp_path: Path) -> None:
    """nbconvert --execute and papermill run notebooks with nbclient, which drops set_next_input."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE)])
    work = tmp_path / "work"
    work.mkdir()
    nbformat.write(nb, work / "probe.ipynb")
    assert texts(execute(work / "probe.ipynb", work)) == ["placed: False terminal: False\n"]


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real kernel and a client, as a notebook front end holds them."""
    from jupyter_client.manager import start_new_kernel

    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir(tmp_path / ".jupyter-data")))
    km, kc = start_new_kernel(kernel_name=KERNEL_NAME, startup_timeout=60)
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _run(kc: Any, code: str, allow_stdin: bool) -> tuple[str, list[dict[str, Any]]]:
    """Run ``code`` as a front end would; the text it printed and the reply's payloads."""
    out: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    reply = kc.execute_interactive(code, allow_stdin=allow_stdin, output_hook=hook, timeout=60)
    return "".join(out), reply["content"].get("payload", [])


@pytest.mark.notebook
def test_interactive_notebook_places_the_cell(kernel: Any) -> None:
    """JupyterLab, Notebook and VS Code send allow_stdin true and insert the payload's cell."""
    printed, _ = _run(kernel, PROBE, allow_stdin=True)
    assert printed == "placed: True terminal: False\n"
    printed, _ = _run(kernel, PROBE, allow_stdin=False)
    assert printed == "placed: False terminal: False\n"
    # And the kernel does send the cell to such a front end.
    _, payloads = _run(kernel, "get_ipython().set_next_input('1 + 1')", allow_stdin=True)
    assert [p["text"] for p in payloads if p.get("source") == "set_next_input"] == ["1 + 1"]


@pytest.mark.notebook
def test_nbclient_run_of_the_models_tutorial_promises_no_next_cell(tmp_path: Path) -> None:
    """nbconvert and papermill insert no cell, so the tutorial must not say the code is in one."""
    work = tmp_path / "models"
    nb = execute(copy_to(NOTEBOOKS / "models-and-autogenerate.ipynb", work), work)
    out = "\n".join(texts(nb))
    assert "Wrote revision" in out
    assert NOTE not in out


# ---------------------------------------------------------------------- a real terminal


class Tmux:
    """Terminal IPython at a real prompt (prompt_toolkit), in a tmux server of its own."""

    def __init__(self, workdir: Path) -> None:
        self.socket = f"migmagic-{uuid.uuid4().hex[:8]}"
        env = f"IPYTHONDIR={workdir / '.ipython'} DATABASE_URL= "
        command = f"cd {workdir} && env {env}{BIN / 'ipython'} --no-banner --colors=nocolor"
        self.tmux("new-session", "-d", "-s", "t", "-x", "200", "-y", "50", command)
        self.wait_for("In [1]:")

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", "t")

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared:\n{self.screen()}")

    def type(self, line: str, then: str) -> str:
        self.tmux("send-keys", "-t", "t", "-l", line)
        self.tmux("send-keys", "-t", "t", "Enter")
        return self.wait_for(then)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    work = tmp_path / "term"
    work.mkdir()
    term = Tmux(work)
    try:
        yield term
    finally:
        term.close()


def test_real_terminal_prompt_is_a_terminal(terminal: Tmux) -> None:
    screen = terminal.type(PROBE.replace("\n", "; "), then="placed:")
    assert "placed: False terminal: True" in screen


def test_terminal_autogenerate_prints_the_code_and_keeps_the_prompt(terminal: Tmux) -> None:
    """What the user types after an autogenerate runs as typed; the code is on the screen."""
    terminal.type("%load_ext migmagic", then="In [2]:")
    terminal.type("%migrate init sqlite:///term.db", then="In [3]:")
    terminal.type(
        'import sqlalchemy as sa; md = sa.MetaData(); things = sa.Table("things", md, sa.Column("id", sa.Integer, primary_key=True))',
        then="In [4]:",
    )
    terminal.type('%migrate revision --autogenerate -m "create things"', then="In [5]:")
    screen = terminal.type('print("typed" + "-after")', then="In [6]:")
    assert "\ntyped-after" in screen
    assert "op.create_table('things'" in screen
    assert "%migrate edit" in screen
    assert NOTE not in screen
