r"""The Markdown report: GitHub-flavoured tables, ```` ```math ```` blocks, figure links.

GitHub renders ```` ```math ```` blocks and ``$`...`$`` inline math with MathJax; these
forms avoid the escaping bugs of plain ``$...$``. Figures are relative links to
``figures/*.svg``. Strings from files (names, claim text) pass through :func:`md_escape` so
they cannot break a table or inject HTML.

Examples:
    >>> md_escape("a|b <script>")
    'a\\|b &lt;script&gt;'
"""

from __future__ import annotations

from typing import Any

from .html import format_number, slug


def md_escape(text: Any) -> str:
    """Escape a string for a Markdown table cell or paragraph: ``|``, ``<``, ``>``, ``&``,
    backslashes, emphasis and code markers; newlines become spaces."""
    out = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in ("\\", "|", "*", "_", "`", "[", "]"):
        out = out.replace(ch, "\\" + ch)
    return " ".join(out.split())


def fence_safe(text: Any) -> str:
    """Text for a fenced code block: a run of three backticks cannot close the fence."""
    return str(text).replace("```", "`\u200b``")


def render_markdown(context: dict[str, Any]) -> str:
    """The report as Markdown from ``templates/report.md``; the same ``context`` as the HTML."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    # Markdown is not HTML: escaping is explicit, through the md filter, not autoescape.
    env = Environment(
        loader=PackageLoader("gradflow", "report/templates"),  # noqa: S701
        autoescape=False,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(num=format_number, slug=slug, md=md_escape, fence=fence_safe)
    text = env.get_template("report.md").render(**context)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text
