"""Executing real ``.ipynb`` files with a real Jupyter kernel (nbclient), for the tests."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL_NAME = "migmagic-test"


def kernel_dir(base: Path) -> Path:
    """A Jupyter data dir holding a kernelspec that runs this interpreter (the venv's)."""
    spec = base / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "migmagic test kernel",
                "language": "python",
            }
        )
    )
    return base


def execute(notebook: Path, workdir: Path, env: dict[str, str] | None = None, timeout: int = 300) -> Any:
    """Run ``notebook`` top to bottom in ``workdir`` with a fresh kernel; return the executed notebook.

    A cell that fails raises ``nbclient.exceptions.CellExecutionError``.
    """
    import nbformat
    from nbclient import NotebookClient

    data_dir = kernel_dir(workdir.parent / ".jupyter-data")
    nb = nbformat.read(notebook, as_version=4)
    old = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "DATABASE_URL")}
    os.environ["JUPYTER_PATH"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)
    if env:
        os.environ.update(env)
    try:
        client = NotebookClient(
            nb, timeout=timeout, kernel_name=KERNEL_NAME, resources={"metadata": {"path": str(workdir)}}
        )
        client.execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def copy_to(notebook: Path, workdir: Path) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / notebook.name
    shutil.copy(notebook, target)
    return target


def texts(nb: Any) -> list[str]:
    """Each code cell's visible text: streams, text/plain results and error lines."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        parts = []
        for o in cell.get("outputs", []):
            if o.output_type == "stream":
                parts.append(o.text)
            elif o.output_type == "error":
                parts.append("\n".join(o.traceback))
            elif "data" in o:
                parts.append(o.data.get("text/plain", ""))
        out.append("\n".join(parts))
    return out
