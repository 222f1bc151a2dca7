"""A real Jupyter kernel driven as a notebook front end drives it, with the kernel's own CPU time.

:class:`Kernel` starts this interpreter's ``ipykernel`` through ``jupyter_client``, runs cells and waits for them as JupyterLab does (the
reply on the shell channel, every output on iopub until the kernel is idle
again). :meth:`Kernel.timed` measures a cell's wall time here and the CPU time
the kernel process spent on it (``getrusage`` read inside the kernel just before
and just after, so a few hundred microseconds of message handling are counted).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .timing import Measured

_RUSAGE = "__import__('resource').getrusage(__import__('resource').RUSAGE_SELF)"


class CellFailed(RuntimeError):
    pass


class Kernel:
    """One kernel process in ``cwd``; ``run(code)`` runs a cell and returns its text output."""

    def __init__(self, cwd: Path, env: dict[str, str] | None = None) -> None:
        from jupyter_client.manager import KernelManager

        # The environment's own python3 kernel: jupyter_client runs it with this interpreter.
        self.km = KernelManager(kernel_name="python3")
        full_env = {**os.environ, **(env or {})}
        full_env.pop("DATABASE_URL", None)
        self.km.start_kernel(cwd=str(cwd), env=full_env, extra_arguments=["--HistoryManager.enabled=False"])
        self.client = self.km.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)
        # The benchmarks package is importable in the kernel (for the comparison subjects).
        self.run(f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})")

    def run(self, code: str, timeout: float = 1200) -> str:
        """Run ``code`` as a cell; its text output (stream and results). A failed cell raises :class:`CellFailed`."""
        msg_id = self.client.execute(code, store_history=False)
        out: list[str] = []
        error: str | None = None
        while True:
            msg = self.client.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind in ("execute_result", "display_data", "update_display_data"):
                out.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                error = "\n".join(content["traceback"])
            elif kind == "status" and content["execution_state"] == "idle":
                break
        reply = self.client.get_shell_msg(timeout=timeout)
        if error is not None or reply["content"]["status"] != "ok":
            raise CellFailed(f"cell failed: {code[:200]}\n{error or reply['content']}")
        return "".join(out)

    def cpu(self) -> float:
        """The kernel process's CPU seconds so far (user + system)."""
        text = self.run(f"_r = {_RUSAGE}; print(repr(_r.ru_utime + _r.ru_stime))")
        return float(text.strip().splitlines()[-1])

    def timed(self, code: str) -> Measured:
        """Run ``code``; the wall seconds seen from here and the CPU seconds the kernel spent."""
        self.run(f"_mm_cpu0 = {_RUSAGE}")
        start = time.perf_counter()
        self.run(code)
        wall = time.perf_counter() - start
        text = self.run(f"_r = {_RUSAGE}; print(repr(_r.ru_utime + _r.ru_stime - _mm_cpu0.ru_utime - _mm_cpu0.ru_stime))")
        return Measured(wall, float(text.strip().splitlines()[-1]))

    def close(self) -> None:
        self.client.stop_channels()
        self.km.shutdown_kernel(now=True)

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
