"""Every number in the README comes from a snippet shown beside it: run the snippets, compare."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def snippet(tag: str) -> tuple[str, str]:
    """The Python block after ``<!-- readme-snippet: tag -->`` and the Markdown table after it."""
    text = README.read_text("utf-8")
    found = re.search(
        rf"<!-- readme-snippet: {tag} -->\n```python\n(.*?)```\n\n((?:\|[^\n]*\|\n)+)", text, re.S
    )
    assert found, f"README has no snippet {tag!r} followed by a table"
    return found.group(1), found.group(2)


@pytest.mark.slow
def test_lag_table_is_what_its_snippet_prints():
    code, table = snippet("lag-table")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md:lag-table", "exec"), {})  # our own README, not user input
    rows = [r for r in table.splitlines() if re.match(r"\| [a-z]", r) and "cell" not in r]
    # Exact text: the table is the snippet's printed output, rounded as printed.
    assert out.getvalue().splitlines() == rows
