"""Executing real ``.ipynb`` files with a real Jupyter kernel (nbclient), for the tests."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
KERNEL_NAME = "migmagic-test"
# What running a tutorial leaves behind: not part of a copy of the notebooks folder.
GENERATED = ("*.db", "*-migmagic.lock", "migrations", "*.html", ".ipynb_checkpoints", "__pycache__", "*.migmagic-restore")


def tutorials() -> list[Path]:
    """Every tutorial notebook in the repository's notebooks folder."""
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def copy_notebooks(target: Path) -> Path:
    """A copy of the repository's notebooks folder as a fresh checkout has it, at ``target/notebooks``."""
    shutil.copytree(NOTEBOOKS, target / "notebooks", ignore=shutil.ignore_patterns(*GENERATED))
    return target / "notebooks"


def readme_render_command() -> str:
    """The README's first command's ``jupyter nbconvert ...`` part, with this venv's jupyter."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    command = next(line for line in first_block.splitlines() if line.strip() and not line.startswith("#"))
    render = command[command.index(".venv/bin/jupyter nbconvert") :].split("&&")[0].strip()
    return render.replace(".venv/bin/", f"{Path(sys.executable).parent}/", 1)


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
    old = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "DATABASE_URL", "MIGMAGIC_TUTORIAL_URL", *(env or {}))}
    os.environ["JUPYTER_PATH"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("MIGMAGIC_TUTORIAL_URL", None)
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


def texts(nb: Any, *, expected_errors: bool = True) -> list[str]:
    """Each code cell's visible text: streams, text/plain results and error lines.

    Without ``expected_errors``, cells tagged ``raises-exception`` (a tutorial
    showing a refusal on purpose) are left out.
    """
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if not expected_errors and "raises-exception" in cell.get("metadata", {}).get("tags", []):
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
