"""The tutorial notebooks/rehearse-and-verify.ipynb shows the guard refusing, the change rehearsed and verified, accepted, then restored."""

from __future__ import annotations

from pathlib import Path

import pytest
from nbrun import NOTEBOOKS, copy_to, execute, texts


@pytest.mark.notebook
def test_rehearse_and_verify_walks_through_guard_and_restore(tmp_path: Path) -> None:
    work = tmp_path / "rehearse"
    nb = execute(copy_to(NOTEBOOKS / "rehearse-and-verify.ipynb", work), work)
    out = texts(nb)
    joined = "\n".join(out)
    refusal = next(t for t in out if "DataLossRefused" in t)
    sentence, _, table = refusal.partition("\nrevision ")
    refusal = " ".join(sentence.split()) + "\nrevision " + table  # the sentence is broken between words in a kernel
    assert refusal.startswith("DataLossRefused: The upgrade to head would destroy data: 3 values of readings.note")
    assert "%migrate upgrade head --accept-data-loss" in refusal and "rows at stake" in refusal
    assert "Upgraded sqlite:///rehearse.db" in joined and "Restored sqlite:///rehearse.db to restore point 2" in joined
    assert "window open" in out[-4] and "t-02     0.1" in out[-3]  # the notes and the calibrations are back
    assert "restore point 2" in out[-1]  # the ledger's restore row
    assert (work / "rehearse-and-verify" / "migrations" / "versions").is_dir()
    # Rehearsed and verified before it was applied, the real database untouched by the rehearsal.
    assert any(t.startswith("Rehearsed") or "dry run" in t.lower() for t in out), out
    assert any("verif" in t.lower() and "FAILED" not in t for t in out), out
