"""Text from revisions (messages, ids, branch labels) is escaped in every HTML form, on each database."""

from __future__ import annotations

from typing import Any

from conftest import EVENTS

MESSAGE = "<script>alert('m')</script> & co"
REV_ID = "x<b>&y"
LABEL = "<i>lbl&"
RAW = ("<script>", "</script>", "<b>", "<i>", "& co", "&y", "lbl&<")


def _assert_escaped(html: str, where: str) -> None:
    for raw in RAW:
        assert raw not in html, f"{raw!r} unescaped in {where}: {html[:400]}"


def test_revision_text_is_escaped_in_every_html_form(migrator: Any) -> None:
    from migmagic import revisionfile

    # --rev-id takes letters, digits and _ only; a file written by hand (or by someone else's
    # tool) may hold any id Alembic accepts, and that id is shown escaped.
    path = migrator.folder / "versions" / "x_b_y_script.py"
    path.write_text(revisionfile.render(message=MESSAGE, rev_id=REV_ID, down_revision=None, body=EVENTS, branch_labels=LABEL))
    written = migrator.revision(MESSAGE, EVENTS)
    assert (written.revision, written.action) == (REV_ID, "unchanged")
    second = migrator.revision("second & <u>last</u>", "def upgrade():\n    pass\n")
    forms = {
        "written": written,
        "status (pending)": migrator.status(),
        "upgrade outcome": migrator.upgrade(REV_ID),
        "status (applied)": migrator.status(),
        "history": migrator.history(),
        "heads": migrator.heads(),
        "show": migrator.show(REV_ID),
        "current": migrator.current(),
        "log": migrator.log(),
        "downgrade outcome": migrator.downgrade("base"),
        "sql": migrator.sql("upgrade", f"{LABEL}@head"),
    }
    for where, obj in forms.items():
        html = obj._repr_html_()
        _assert_escaped(html, where)
        if where not in ("sql",):
            assert "&lt;" in html, where
    assert "&lt;/script&gt; &amp; co" in forms["history"]._repr_html_()
    assert "x&lt;b&gt;&amp;y" in forms["status (applied)"]._repr_html_()
    assert "&lt;i&gt;lbl&amp;" in forms["show"]._repr_html_()
    assert "&lt;u&gt;" in migrator.heads()._repr_html_()
    assert second.revision in migrator.history()._repr_html_()
