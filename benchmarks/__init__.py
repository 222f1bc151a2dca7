"""migmagic's benchmark suite: ``python -m benchmarks`` (see the README's Benchmarks section).

It generates its own workloads in temp dirs, measures migmagic side by side with
the ``alembic`` command and with the same SQL run directly, and writes
``benchmarks/results.md`` with the machine's details. Not a timed test.
"""
