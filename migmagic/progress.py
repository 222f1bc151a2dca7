"""The progress line of a long ``upgrade``/``downgrade``: the running step, elapsed time and a bar.

A :class:`Progress` is the ``progress`` callback the engine is given. It costs
the engine a few attribute writes per step: a daemon thread draws the line, at
most four times a second, and only once the command has run half a second, so
a fast command shows nothing but its summary. Closing it (``with`` block end,
success or failure) stops the thread, waits for it, and clears the line; nothing
is drawn after that.

The engine calls, today: ``progress(done, total, step)`` before the first step
(``step`` None) and after each step. It may also call:

* ``progress.begin(steps)``: the plan, before the first step. With it the line
  names the running step (the next one in plan order), not only its number.
* ``progress.started(step)``: a step starts (overrides the plan order).
* ``progress.finished(step)``: a step finished (the same as ``progress(done, total, step)``).
* ``progress.closed(ok)``: the command ended; the ``with`` block does this too.

Where the line goes is a :class:`Sink`: an updating display in a notebook, a
``\\r`` line on a terminal's stderr. Nothing here imports IPython.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol, TextIO


class Sink(Protocol):
    def show(self, text: str) -> None: ...

    def clear(self) -> None: ...


class TerminalSink:
    """A line on ``stream`` rewritten in place with ``\\r``; cleared (blanked) at the end."""

    def __init__(self, stream: TextIO, width: int = 100) -> None:
        self.stream = stream
        self.width = width
        self._drawn = False

    def show(self, text: str) -> None:
        self.stream.write(f"\r{text[: self.width]:<{self.width}}")
        self.stream.flush()
        self._drawn = True

    def clear(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self._drawn = False


class DisplaySink:
    """One notebook display (``display_id``) updated in place; emptied at the end."""

    def __init__(self, display: Any) -> None:
        self._display = display  # IPython.display.display
        self._handle: Any = None

    def show(self, text: str) -> None:
        data = {"text/plain": text}
        if self._handle is None:
            self._handle = self._display(data, raw=True, display_id=True)
        else:
            self._handle.update(data, raw=True)

    def clear(self) -> None:
        if self._handle is not None:
            self._handle.update({"text/plain": ""}, raw=True)


def bar(done: int, total: int, width: int = 20) -> str:
    filled = round(width * done / total) if total else 0
    return "[" + "#" * filled + "." * (width - filled) + "]"


class Progress:
    """The engine's progress callback, drawing on ``sink`` from a daemon thread (see the module)."""

    def __init__(self, sink: Sink, *, delay: float = 0.5, interval: float = 0.25) -> None:
        self.sink = sink
        self.delay = delay
        self.interval = interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._plan: list[Any] = []
        self._total: int | None = None  # None: not planned yet
        self._done = 0
        self._running: Any = None
        self._closed = False
        self._shown = False
        context = contextvars.copy_context()  # a kernel's output goes to the cell that ran the command
        self._thread = threading.Thread(target=context.run, args=(self._draw_loop,), name="migmagic-progress", daemon=True)
        self._thread.start()

    # ---- the engine's calls (cheap: no output here)

    def __call__(self, done: int, total: int, step: Any) -> None:
        with self._lock:
            self._total, self._done = total, done
            self._running = self._plan[done] if done < len(self._plan) else None

    def begin(self, steps: Sequence[Any]) -> None:
        with self._lock:
            self._plan = list(steps)
            self._total, self._done = len(self._plan), 0
            self._running = self._plan[0] if self._plan else None

    def started(self, step: Any) -> None:
        with self._lock:
            self._running = step

    def finished(self, step: Any) -> None:
        with self._lock:
            done = self._done + 1
            total = self._total if self._total is not None else done
        self(done, total, step)

    def closed(self, ok: bool = True) -> None:
        """Stop drawing and clear the line. After this returns nothing more is drawn."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            shown, self._shown = self._shown, False
            if shown:
                self.sink.clear()
        self._thread.join(timeout=2)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        self.closed(ok=exc_type is None)

    # ---- drawing

    def text(self) -> str | None:
        """The line as it stands, or None when there is nothing to say (no steps)."""
        elapsed = f"{time.monotonic() - self._started:.1f} s"
        if self._total is None:
            return f"preparing... {elapsed}"
        if not self._total:
            return None
        step = self._running
        if step is not None:
            what = f"{step.direction} {step.revision} {step.message}"
        elif self._done < self._total:
            what = f"step {self._done + 1} of {self._total}"
        else:
            what = "committing"
        return f"{bar(self._done, self._total)} {self._done}/{self._total} steps  {what}  {elapsed}"

    def _draw_loop(self) -> None:
        if self._stop.wait(self.delay):
            return
        while True:
            with self._lock:
                if self._closed:
                    return
                text = self.text()
                if text is not None:
                    self.sink.show(text)
                    self._shown = True
            if self._stop.wait(self.interval):
                return
