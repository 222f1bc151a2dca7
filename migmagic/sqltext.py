"""What the SQL text a revision sends does to the transaction it runs in, read with a SQL tokenizer.

A revision's ``op.execute(...)`` text may hold several statements, trigger and
function bodies (``CREATE TRIGGER ... BEGIN ... END``), PostgreSQL ``DO $$ BEGIN
... END $$`` blocks, ``CASE ... END``, string and dollar-quoted literals and
comments. Only a top-level ``COMMIT``, ``END``, ``ROLLBACK``, ``ABORT`` or
``PREPARE TRANSACTION`` ends the transaction; the words inside any of those never
do. The statements are split and tokenized by sqlparse (imported on first use),
and only when the text could hold such a statement at all: most statements hold
no ``;`` and do not start with one of those words, and cost one regular-expression
match.
"""

from __future__ import annotations

import re

_COULD_END = re.compile(r"\s*(?:(?:commit|end|abort|rollback|prepare)\b|--|/\*)", re.IGNORECASE)
"""The start of a single statement that could end the transaction (a comment may hide the word)."""

_NOISE = frozenset({"WORK", "TRANSACTION"})  # COMMIT WORK, ROLLBACK TRANSACTION, END TRANSACTION ...


def transaction_end(sql: str) -> str | None:
    """The command by which ``sql`` ends the transaction it runs in (``"COMMIT"``, ``"END"``,
    ``"ROLLBACK"``, ``"ABORT"``, ``"PREPARE TRANSACTION"``), or None when none of its
    top-level statements does.

    ``ROLLBACK TO [SAVEPOINT]`` and ``COMMIT PREPARED`` / ``ROLLBACK PREPARED`` do not
    end the transaction they run in, so they are not counted.
    """
    if ";" not in sql and not _COULD_END.match(sql):
        return None
    for words in _statements(sql):
        found = _ending(words)
        if found:
            return found
    return None


def _statements(sql: str) -> list[list[str]]:
    """The first words (upper case) of each top-level statement in ``sql``, literals and comments skipped."""
    from sqlparse import engine
    from sqlparse import tokens as T

    out = []
    for statement in engine.FilterStack().run(sql):
        words: list[str] = []
        for token in statement.tokens:
            if token.is_whitespace or token.ttype in T.Comment or token.match(T.Punctuation, ";"):
                continue
            if token.ttype not in T.Keyword and words:
                words.append(token.value)  # a name or a literal ends the words that matter
                break
            words.extend(token.value.upper().split())  # the lexer may give "END IF" as one token
            if len(words) >= 3:
                break
        if words:
            out.append(words)
    return out


def _ending(words: list[str]) -> str | None:
    """The command ``words`` (a statement's first words) ends the transaction with, or None."""
    head, rest = words[0], [w.upper() for w in words[1:] if w.upper() not in _NOISE]
    after = rest[0] if rest else None
    if head in ("COMMIT", "ROLLBACK"):
        return None if after in ("TO", "PREPARED") else head
    if head in ("END", "ABORT"):
        return head if after in (None, "AND") else None  # END [WORK] [AND [NO] CHAIN]; never END IF / END LOOP
    if head == "PREPARE" and len(words) > 1 and words[1].upper() == "TRANSACTION":
        return "PREPARE TRANSACTION"
    return None
