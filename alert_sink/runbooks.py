"""The runbooks the sink serves: docs/runbooks/<AlertName>.md as readable HTML pages.

Every alert's `runbook_url` points at `/runbooks/<AlertName>` on the sink, so the link in a
notification, in Grafana or in Alertmanager's UI opens on the laptop running the lab, with
no internet. A runbook is found by listing the folder and matching an alert name (letters
only) against the files in it; a name from a URL never becomes a path, so no request can
read outside the folder.

Runbooks are the repository's own files: the HTML Markdown allows in them is kept as written.
"""

import re
from html import escape
from pathlib import Path

import markdown

# Alert names are PascalCase words (HighLLMCosts); nothing else names a runbook.
RUNBOOK_NAME = re.compile(r"[A-Za-z]{1,64}")
MARKDOWN_EXTENSIONS = ["tables", "fenced_code", "sane_lists"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 52rem;
       padding: 0 1rem; color: #1d1d1f; line-height: 1.5; }
nav { font-size: .9rem; margin-bottom: 1rem; }
h1 { border-bottom: 2px solid #ccc; padding-bottom: .2rem; }
pre { background: #f4f4f5; padding: .6rem .8rem; overflow-x: auto; }
code { font-size: .9rem; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: .2rem .5rem; border-bottom: 1px solid #ddd; }
"""


class RunbookFolder:
    """The `<AlertName>.md` files of one folder, read afresh on every call.

    Reading on every call lets an edited or added runbook show without a restart; the
    folder holds one small file per alert.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def names(self) -> list[str]:
        """Alert names that have a runbook, sorted; empty when the folder is missing."""
        if not self.folder.is_dir():
            return []
        return sorted(
            path.stem
            for path in self.folder.glob("*.md")
            if RUNBOOK_NAME.fullmatch(path.stem) and path.is_file()
        )

    def read(self, name: str) -> str | None:
        """The Markdown of the runbook named ``name``, or None when there is none."""
        if name not in self.names():
            return None
        return (self.folder / f"{name}.md").read_text(encoding="utf-8")


def is_runbook_name(name: str) -> bool:
    return RUNBOOK_NAME.fullmatch(name) is not None


def _page(title: str, nav: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>"
    )


def render_runbook(name: str, text: str) -> str:
    """The page of one runbook, served at /runbooks/<name>.

    Links are relative (``../`` is the sink's page), so they work on whatever host port
    the sink is reached through.
    """
    body = markdown.markdown(text, extensions=MARKDOWN_EXTENSIONS, output_format="html")
    nav = '<a href="../">Alert sink</a> &middot; <a href="../runbooks">All runbooks</a>'
    return _page(f"{name} runbook", nav, body)


def render_index(names: list[str], folder: Path) -> str:
    """The list of runbooks, served at /runbooks (links relative to it)."""
    if names:
        items = "".join(
            f'<li><a href="runbooks/{escape(name)}">{escape(name)}</a></li>' for name in names
        )
        listing = f"<ul>{items}</ul>"
    else:
        listing = (
            f"<p>No runbook found in <code>{escape(str(folder))}</code>. Set "
            "<code>ALERT_SINK_RUNBOOKS_DIR</code> to the repository's "
            "<code>docs/runbooks</code>.</p>"
        )
    body = f"<h1>Runbooks</h1><p>One per alert: what it means and what to do.</p>{listing}"
    return _page("Runbooks", '<a href="./">Alert sink</a>', body)
