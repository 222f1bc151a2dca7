"""The machine and software a run was measured on."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from importlib import metadata
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    here = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" (with uncommitted changes)" if dirty else "")


def postgres_version(admin_url: str) -> str:
    """``server_version`` of the PostgreSQL at ``admin_url``, or why it is unknown."""
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(admin_url)
        try:
            with engine.connect() as conn:
                return str(conn.execute(sa.text("SHOW server_version")).scalar())
        finally:
            engine.dispose()
    except Exception as exc:
        return f"unavailable ({type(exc).__name__})"


def details(postgres_admin_url: str | None) -> list[tuple[str, str]]:
    """(name, value) pairs for the report's machine section."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return [
        ("CPU", _cpu_model()),
        ("cores", f"{os.cpu_count()} (usable by this process: {usable})"),
        ("OS", platform.platform()),
        ("load average at start (1, 5, 15 min)", ", ".join(f"{x:.2f}" for x in os.getloadavg()) + " (other work on the machine adds noise)"),
        ("Python", sys.version.split()[0] + f" ({platform.python_implementation()})"),
        ("migmagic", f"{_version('migmagic')}, commit {_git_commit()}"),
        ("Alembic", _version("alembic")),
        ("SQLAlchemy", _version("sqlalchemy")),
        ("pandas", _version("pandas")),
        ("IPython", _version("ipython")),
        ("psycopg", _version("psycopg")),
        ("SQLite", sqlite3.sqlite_version),
        ("PostgreSQL", postgres_version(postgres_admin_url) if postgres_admin_url else "not measured"),
    ]
