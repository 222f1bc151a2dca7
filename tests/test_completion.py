"""Tab completion after ``%migrate``: only migmagic's words, fast on the first Tab, in a real kernel too."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import EVENTS, Shell
from nbrun import KERNEL_NAME, kernel_dir

PYTHON_WORDS = {"and", "if", "in", "is", "not", "or", "abs", "print", "str", "sorted"}


def complete(ip: Any, code: str) -> list[str]:
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        return [c.text for c in ip.Completer.completions(code, len(code))]


@pytest.fixture
def ip_two_revisions(ip_empty: Shell, sqlite_url: str) -> tuple[Shell, list[str]]:
    ip_empty.ok(f"%migrate init {sqlite_url}")
    ip_empty.ok(f'%%revision -m "create events table" --apply\n{EVENTS}')
    ip_empty.ok('%migrate revision -m "second" --branch-label extra --head base')
    return ip_empty, list(ip_empty.ok("%migrate history")["revision"])


def test_in_process_completion_offers_only_migmagic_words(ip_two_revisions: tuple[Shell, list[str]]) -> None:
    shell, ids = ip_two_revisions
    ip = shell.ip
    assert complete(ip, "%migrate up") == ["upgrade"]
    assert complete(ip, "%migrate ") == list(__import__("migmagic.magics").magics.COMMANDS)
    down = complete(ip, "%migrate downgrade ")
    assert down[:3] == ["head", "heads", "base"] and set(down[3:]) == {*ids, "extra"}, down
    assert not PYTHON_WORDS & set(down)
    assert sorted(complete(ip, "%migrate upgrade head --s")) == ["--sample", "--sql"]  # upgrade's own options only
    assert complete(ip, "%migrate schema ") == ["events"]
    assert complete(ip, "%migrate schema ev") == ["events"]
    assert complete(ip, "%migrate history -r ")[:3] == ["head", "heads", "base"]
    assert complete(ip, f"%migrate show {ids[0][:3]}") == [ids[0]]
    assert complete(ip, "%migrate revision --auto") == ["--autogenerate"]


def test_table_completion_before_anything_is_set_up_offers_nothing_and_creates_nothing(ip_empty: Shell, workdir: Path) -> None:
    assert complete(ip_empty.ip, "%migrate schema ") == [] or "events" not in complete(ip_empty.ip, "%migrate schema ")
    assert not (workdir / "migmagic.db").exists()


# ---------------------------------------------------------------- a real kernel's complete_request


@pytest.fixture
def kernel(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from jupyter_client.manager import KernelManager

    monkeypatch.setenv("JUPYTER_PATH", str(kernel_dir(workdir.parent / ".jupyter-data")))
    km = KernelManager(kernel_name=KERNEL_NAME)
    km.start_kernel(cwd=str(workdir))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc: Any, code: str) -> None:
    reply = kc.execute_interactive(code, timeout=60, output_hook=lambda msg: None)
    assert reply["content"]["status"] == "ok", reply["content"]


def kernel_complete(kc: Any, code: str) -> tuple[list[str], float]:
    started = time.perf_counter()
    reply = kc.complete(code, len(code), reply=True, timeout=60)
    return reply["content"]["matches"], time.perf_counter() - started


def test_completion_through_a_real_kernel(kernel: Any, workdir: Path) -> None:
    printed: list[str] = []
    run(kernel, "%load_ext migmagic")
    first, seconds = kernel_complete(kernel, "%migrate up")
    print(f"first completion in a fresh kernel: {seconds:.3f} s")
    assert first == ["upgrade"]
    # Fast on the first Tab because nothing heavy loads for it (timings are reported, not asserted).
    reply = kernel.execute_interactive(
        "import sys; print(sorted(m for m in ('alembic', 'pandas', 'sqlalchemy') if m in sys.modules))",
        timeout=60, output_hook=lambda msg: printed.append(msg["content"].get("text", "")) if msg["msg_type"] == "stream" else None,
    )
    assert reply["content"]["status"] == "ok" and "".join(printed).strip() == "[]", printed

    run(kernel, "%migrate init sqlite:///x.db")
    run(kernel, f'%%revision -m "create events table" --apply\n{EVENTS}')
    run(kernel, '%migrate revision -m "second"')
    ids = [p.name.split("_")[0] for p in sorted((workdir / "migrations" / "versions").glob("*.py"))]

    down, _ = kernel_complete(kernel, "%migrate downgrade ")
    assert down[:3] == ["head", "heads", "base"] and sorted(down[3:]) == sorted(ids), down
    assert not PYTHON_WORDS & set(down)

    sql, seconds = kernel_complete(kernel, "%migrate upgrade head --s")
    assert sorted(sql) == ["--sample", "--sql"], (sql, seconds)

    tables, _ = kernel_complete(kernel, "%migrate schema ")
    assert tables == ["events"]
