"""The progress line: the running step, elapsed time and a bar; nothing for fast commands; cleared at the end."""

from __future__ import annotations

import io
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_completion import kernel, run  # noqa: F401 - the real-kernel fixture

from migmagic import Migrator
from migmagic.errors import MigrationFailed
from migmagic.progress import Progress, TerminalSink

CLEAR = "\r" + " " * 100 + "\r"


class TTY(io.StringIO):
    """A terminal's stderr: what was written, in order."""

    def isatty(self) -> bool:
        return True


def slow(seconds: float, fail: bool = False) -> str:
    raise_line = "    raise RuntimeError('boom')\n" if fail else ""
    return f"import time\n\n\ndef upgrade():\n    time.sleep({seconds})\n{raise_line}\n\ndef downgrade():\n    pass\n"


@pytest.fixture
def m(workdir: Path, sqlite_url: str) -> Any:
    migrator = Migrator.init(sqlite_url)
    yield migrator
    migrator.close()


def test_a_slow_single_step_shows_its_progress_and_is_cleared(m: Any) -> None:
    m.revision("slow step", slow(1.4))
    tty = TTY()
    started = time.monotonic()
    with Progress(TerminalSink(tty)) as progress:
        outcome = m.upgrade("head", progress=progress)
    elapsed = time.monotonic() - started
    out = tty.getvalue()
    assert "1 step" in outcome.summary
    assert "0/1 steps  upgrade " in out and "slow step" in out and "[" in out, out  # the running step, by name
    assert out.endswith(CLEAR), repr(out[-120:])
    draws = out.count("\r") - 2  # the clearing writes two
    assert 2 <= draws <= (elapsed - 0.5) / 0.25 + 2, (draws, elapsed)  # ~4 a second after the first 0.5 s


def test_a_fast_command_shows_nothing(m: Any) -> None:
    for i in range(3):
        m.revision(f"step {i}", f"def upgrade():\n    op.execute('SELECT {i}')\n")
    tty = TTY()
    with Progress(TerminalSink(tty)) as progress:
        m.upgrade("head", progress=progress)
    assert tty.getvalue() == ""


def test_a_failed_step_leaves_a_clean_line_and_nothing_after(m: Any) -> None:
    m.revision("slow failure", slow(0.9, fail=True))
    tty = TTY()
    with pytest.raises(MigrationFailed), Progress(TerminalSink(tty)) as progress:
        m.upgrade("head", progress=progress)
    out = tty.getvalue()
    assert "slow failure" in out and out.endswith(CLEAR), repr(out[-120:])
    time.sleep(0.6)
    assert tty.getvalue() == out  # nothing written after the command ended


def test_with_the_plan_the_line_names_the_running_step() -> None:
    steps = [SimpleNamespace(direction="upgrade", revision=r, message=f"message {r}") for r in ("aaa1", "bbb2", "ccc3")]
    tty = TTY()
    with Progress(TerminalSink(tty), delay=0.05, interval=0.05) as progress:
        progress.begin(steps)
        progress(0, 3, None)
        time.sleep(0.15)
        assert "0/3 steps  upgrade aaa1 message aaa1" in tty.getvalue()
        progress(1, 3, steps[0])  # today's call after a step: the next one in plan order runs
        time.sleep(0.15)
        assert "1/3 steps  upgrade bbb2 message bbb2" in tty.getvalue()
        progress.started(steps[2])
        time.sleep(0.15)
        assert "1/3 steps  upgrade ccc3 message ccc3" in tty.getvalue()
    assert tty.getvalue().endswith(CLEAR)


def test_progress_updates_one_display_in_a_real_kernel(kernel: Any) -> None:  # noqa: F811
    run(kernel, "%load_ext migmagic")
    run(kernel, "%migrate init sqlite:///x.db")
    messages: list[dict[str, Any]] = []
    cell = f'%%revision -m "slow step" --apply\n{slow(1.5)}'
    reply = kernel.execute_interactive(cell, timeout=60, output_hook=messages.append)
    assert reply["content"]["status"] == "ok"
    shown = [m for m in messages if m["msg_type"] == "display_data" and m["content"].get("transient", {}).get("display_id")]
    assert len(shown) == 1, [m["msg_type"] for m in messages]
    display_id = shown[0]["content"]["transient"]["display_id"]
    updates = [m["content"]["data"]["text/plain"] for m in messages if m["msg_type"] == "update_display_data" and m["content"]["transient"]["display_id"] == display_id]
    texts = [shown[0]["content"]["data"]["text/plain"], *updates]
    assert "0/1 steps" in texts[0] and texts[0].endswith(" s"), texts
    assert updates[-1] == "", updates  # cleared when the command ended
    assert 2 <= len(texts) <= 10, texts  # throttled: ~4 a second over ~2 s, not one per step
    results = [m for m in messages if m["msg_type"] == "execute_result"]
    assert "Upgraded sqlite:///x.db" in results[-1]["content"]["data"]["text/plain"]
    assert not [m for m in messages if m["msg_type"] == "stream" and "\r" in m["content"]["text"]]


def test_an_empty_body_needs_no_progress_thread(kernel: Any) -> None:  # noqa: F811
    run(kernel, "%load_ext migmagic\n%migrate init sqlite:///x.db")
    run(kernel, '%%revision -m "quick" --apply\ndef upgrade():\n    pass\n')
    run(kernel, "import threading\nassert not [t for t in threading.enumerate() if t.name == 'migmagic-progress'], threading.enumerate()")
