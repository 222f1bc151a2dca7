"""Who shows what the magics hand to IPython's ``set_next_input``.

``set_next_input(text)`` asks the front end to put ``text`` in a new cell. What
becomes of it depends on who runs the code:

* JupyterLab, classic Notebook and VS Code notebooks insert a cell below the
  running one. They send each ``execute_request`` with ``allow_stdin`` true (they
  can answer ``input()``).
* nbclient, and so ``jupyter nbconvert --execute`` and papermill, sends
  ``allow_stdin`` false and drops the payload: no cell appears.
* Terminal IPython pre-fills the next prompt with the text, where whatever the
  user types next is appended to it: the commands typed after ``%migrate
  revision --autogenerate`` are swallowed into the generated cell. migmagic
  therefore prints the code there and leaves the prompt empty; ``%migrate edit
  REV`` loads a revision into the prompt when the user asks for it.
* A plain ``InteractiveShell`` (a script, the test suite) shows nothing.

Nothing here imports IPython or ipykernel: the shell given is inspected as it is.
"""

from __future__ import annotations

import sys
from typing import Any


def is_terminal(shell: Any) -> bool:
    """True when ``shell`` is terminal IPython (the ``ipython`` command's prompt).

    There the generated code is printed, not pre-filled at the next prompt.
    """
    module = sys.modules.get("IPython.terminal.interactiveshell")
    return shell is not None and module is not None and isinstance(shell, module.TerminalInteractiveShell)


def _request(kernel: Any) -> dict[str, Any]:
    """The message the kernel is executing now (ipykernel 6 and later), or an empty dict."""
    get_parent = getattr(kernel, "get_parent", None)
    if get_parent is None:
        return {}
    try:
        parent = get_parent("shell")
    except Exception:
        return {}
    return parent if isinstance(parent, dict) else {}


def will_place_next_cell(shell: Any) -> bool:
    """True when ``shell.set_next_input(text)`` will show ``text`` as a new cell to review.

    That is a Jupyter kernel running a request from an interactive notebook front
    end (``allow_stdin`` true); not nbclient/nbconvert/papermill, not terminal
    IPython, not a shell without a kernel.
    """
    if shell is None or is_terminal(shell):
        return False
    kernel = getattr(shell, "kernel", None)
    if kernel is None:
        return False
    request = _request(kernel)
    if request:
        if request.get("header", {}).get("msg_type") != "execute_request":
            return False
        return bool(request.get("content", {}).get("allow_stdin", False))
    # Older ipykernel: what the running request said, as the kernel kept it.
    return bool(getattr(kernel, "_allow_stdin", False))
