"""Every table a command returns is a DataFrame a user keeps: it pickles and comes back the same
(``pickle``, ``DataFrame.to_pickle``, so ``%store``, joblib and multiprocessing work)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import ADD_VENUE, EVENTS

from migmagic import Migrator


@pytest.fixture
def results(workdir: Path) -> dict[str, Any]:
    """The tables of a database with two revisions, as each command returns them."""
    import sqlalchemy as sa

    m = Migrator.init(f"sqlite:///{workdir / 'app.db'}")
    m.revision("create events table", EVENTS)
    m.revision("add venue", ADD_VENUE)
    up = m.upgrade("head")
    metadata = sa.MetaData()
    sa.Table("events", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("extra", sa.String(20)))
    out = {
        "history": m.history(),
        "log": m.log(),
        "heads": m.heads(),
        "branches": m.branches(),
        "steps": up.steps,
        "schema": m.schema(),
        "schema columns": m.schema("events").columns,
        "diff": m.diff(metadata).table,
        "restore points": m.restore_points(),
        "verify": m.verify().revisions,
    }
    m.close()
    return out


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert type(b) is type(a)
    pd.testing.assert_frame_equal(pd.DataFrame(b), pd.DataFrame(a))
    assert repr(b) == repr(a) and b._repr_html_() == a._repr_html_()


def test_each_returned_table_pickles_and_shows_the_same(results: dict[str, Any]) -> None:
    for name, frame in results.items():
        assert isinstance(frame, pd.DataFrame), name
        assert len(frame) or name == "branches", name  # tables with rows: the round trip is of something
        _same(frame, pickle.loads(pickle.dumps(frame)))


def test_to_pickle_round_trip(results: dict[str, Any], tmp_path: Path) -> None:
    for name, frame in results.items():
        path = tmp_path / f"{name}.pkl"
        frame.to_pickle(path)
        _same(frame, pd.read_pickle(path))


def test_a_filtered_history_pickles(results: dict[str, Any]) -> None:
    h = results["history"]
    part = h[["revision", "message"]]
    _same(part, pickle.loads(pickle.dumps(part)))


def test_a_pickled_history_loads_in_a_fresh_interpreter(results: dict[str, Any], tmp_path: Path) -> None:
    """Another process (joblib, multiprocessing, a later kernel) that has made no table yet reads it back."""
    import subprocess
    import sys

    path = tmp_path / "history.pkl"
    results["history"].to_pickle(path)
    code = f"import pandas as pd; h = pd.read_pickle({str(path)!r}); print(type(h).__module__, type(h).__name__); print(repr(h))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "migmagic.display History"
    assert out.split("\n", 1)[1].rstrip() == repr(results["history"]).rstrip()
