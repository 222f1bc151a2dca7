"""MkDocs hooks (``hooks:`` in mkdocs.yml): the pages made from the repository when the site is built.

- ``tutorials/<name>.md``: each notebook of ``notebooks/``, executed top to bottom in a
  temporary copy of that folder (as the README's first command runs it, never with the
  ``DATABASE_URL`` of the shell) and converted by nbconvert: the real output, pictures included.
- ``commands/<name>.md``: each command's ``%migrate NAME -h``, asked of the magics themselves, so
  the reference cannot drift from the code. A page may also hold ``<!-- help: %%revision -->``
  (or any magic line ending in ``-h``): it is replaced by that line's output.
- ``notebook.css``: the colours of highlighted code and a few rules for the tutorials' cells.

Nothing here is written to the repository: the pages exist only in the built site.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
HELP_MARKER = re.compile(r"<!-- help: (%%?\S+(?: \S+)*) -->")
# What running a tutorial leaves beside it, left out of the copy the site is built from.
GENERATED = ("*.db", "*-migmagic.lock", "*.html", ".ipynb_checkpoints", "__pycache__", "*.migmagic-restore")

_HELP_SCRIPT = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "migmagic")
out = {}
for line in json.loads(sys.argv[1]):
    magic, _, rest = line.lstrip("%").partition(" ")
    with capture_output() as cap:
        ip.run_line_magic(magic, rest)  # a cell magic's -h (%%revision -h) is served by its line form too
    out[line] = cap.stdout
print(json.dumps(out))
"""


def help_texts(lines: list[str]) -> dict[str, str]:
    """The output of each magic line (``%migrate -h``, ``%migrate upgrade -h``...), in a fresh interpreter."""
    env = {**os.environ, "COLUMNS": "80"}  # argparse wraps to the terminal's width
    done = subprocess.run(
        [sys.executable, "-c", _HELP_SCRIPT, json.dumps(lines)], capture_output=True, text=True, env=env, check=True
    )
    result: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def commands(overview: str) -> dict[str, str]:
    """``{name: one-line help}`` of every command, read from ``%migrate -h``."""
    listed = overview.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    found = (re.match(r"  (\S+)\s+(.*)", line) for line in listed.splitlines())
    return {m.group(1): m.group(2) for m in found if m}


def command_page(name: str, summary: str, usage: str) -> str:
    return (
        f"---\ntitle: {name}\n---\n\n# `%migrate {name}`\n\n{summary}\n\n"
        f"```text\n{usage.rstrip()}\n```\n\n"
        "This is the command's own help (`%migrate " + name + " -h`), taken from migmagic when the site "
        "was built. [All the commands](index.md) has what each returns and its Alembic counterpart.\n"
    )


def execute(notebook: Path, workdir: Path) -> Any:
    """``notebook`` run top to bottom in ``workdir`` by a fresh kernel of this interpreter."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", "MIGMAGIC_TUTORIAL_URL", "XDG_CACHE_HOME")}
    os.environ.pop("DATABASE_URL", None)  # the tutorials' own databases, whatever this shell names
    os.environ.pop("MIGMAGIC_TUTORIAL_URL", None)
    os.environ["XDG_CACHE_HOME"] = str(workdir / ".cache")
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return nb


def tutorial_page(notebook: Path, workdir: Path) -> str:
    """The executed notebook as a page: its cells and their real outputs, as nbconvert renders them."""
    from nbconvert import HTMLExporter

    nb = execute(notebook, workdir)
    body, _ = HTMLExporter(template_name="basic").from_notebook_node(nb)
    title = next(
        (line[2:].strip() for cell in nb.cells if cell.cell_type == "markdown" for line in cell.source.splitlines() if line.startswith("# ")),
        notebook.stem,
    )
    source = f"notebooks/{notebook.name}"
    return (
        f"---\ntitle: {json.dumps(title)}\n---\n\n"
        f'<p class="migmagic-source">Executed from <code>{source}</code> when this site was built. '
        f"Run it yourself: <code>.venv/bin/jupyter lab {source}</code>.</p>\n\n"
        f'<div class="migmagic-notebook">\n{body}\n</div>\n'
    )


def notebook_css() -> str:
    from pygments.formatters import HtmlFormatter

    formatter = HtmlFormatter(style="default")
    rules = formatter.get_style_defs(".migmagic-notebook .highlight") + "\n" + formatter.get_style_defs(".codehilite")
    return rules + """
.migmagic-notebook .prompt { display: none; }
.migmagic-notebook .input_area { background: #f5f5f5; border-left: 3px solid #2980b9; margin: 1em 0 0.3em; }
.migmagic-notebook .input_area pre { margin: 0; padding: 0.5em; background: none; border: none; }
.migmagic-notebook .output_area { margin: 0 0 1em 1em; overflow-x: auto; }
.migmagic-notebook .output_area pre { white-space: pre; font-size: 85%; background: none; border: none; padding: 0.3em 0; }
.migmagic-notebook .output_stderr pre, .migmagic-notebook .output_error pre { color: #a00; }
.migmagic-notebook .output_area table { border-collapse: collapse; margin: 0.5em 0; font-size: 90%; }
.migmagic-notebook .output_area th, .migmagic-notebook .output_area td { border: 1px solid #ddd; padding: 2px 8px; }
.migmagic-notebook .output_area table.migmagic-history td, .migmagic-notebook .output_area table.migmagic-history th { border: none; }
.migmagic-notebook svg { max-width: none; }
"""


def _file(config: Any, src_uri: str, content: str) -> Any:
    from mkdocs.structure.files import File

    return File.generated(config, src_uri, content=content)


def on_files(files: Any, config: Any) -> Any:
    lines = ["%migrate -h"]
    listed = commands(help_texts(lines)["%migrate -h"])
    usage = help_texts([f"%migrate {name} -h" for name in listed])
    for name, summary in listed.items():
        files.append(_file(config, f"commands/{name}.md", command_page(name, summary, usage[f"%migrate {name} -h"])))
    work = Path(tempfile.mkdtemp(prefix="migmagic-docs-"))
    try:
        copy = work / "notebooks"
        own_folders = [p.stem for p in NOTEBOOKS.glob("*.ipynb")]  # where each tutorial keeps its revisions
        shutil.copytree(NOTEBOOKS, copy, ignore=shutil.ignore_patterns(*GENERATED, "migrations", *own_folders))
        for notebook in sorted(copy.glob("*.ipynb")):
            files.append(_file(config, f"tutorials/{notebook.stem}.md", tutorial_page(notebook, copy)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    files.append(_file(config, "notebook.css", notebook_css()))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    wanted = HELP_MARKER.findall(markdown)
    if not wanted:
        return markdown
    out = help_texts(wanted)
    return HELP_MARKER.sub(lambda m: f"```text\n{out[m.group(1)].rstrip()}\n```", markdown)


# The menu: no `nav:` in mkdocs.yml (a page added under docs/ appears by itself), but the
# tutorials first and the reference in a reader's order; pages not named here follow, by file name.
ORDER = [
    "index.md", "tutorials", "revision-cells.md", "commands", "autogenerate.md", "models.md", "pictures.md",
    "rehearse.md", "review.md", "in-ci.md", "where-things-live.md", "databases.md", "guarantees.md", "replay.md",
    "python-api.md", "benchmarks.md", "layout.md", "development.md",
]


def _rank(item: Any) -> int:
    if getattr(item, "file", None) is not None:
        key = item.file.src_uri
    else:  # a section: its folder, from its first page
        first = next((c for c in item.children if getattr(c, "file", None) is not None), None)
        key = first.file.src_uri.split("/")[0] if first else ""
    return ORDER.index(key) if key in ORDER else len(ORDER)


def on_nav(nav: Any, config: Any, files: Any) -> Any:
    nav.items.sort(key=_rank)  # stable: the pages not in ORDER keep their order, by file name
    return nav
