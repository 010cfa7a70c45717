"""The pieces of a self-contained HTML page: the page shell (inline CSS and JS, a Content-Security-
Policy that forbids every network request), tables, inline images and preformatted text.

Every text that reaches the page goes through `html.escape` here; the callers pass plain text.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from dataclasses import dataclass

# no network when opened: nothing may load but the page's own inline style, script and data: images
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
IMAGE_TYPES = {".png": "image/png", ".svg": "image/svg+xml"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em;
       color: #1a1a1a; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin: 1.2em 0 0.4em; }
.meta, .caption, .note { color: #555; }
.note { background: #fff6e0; border-left: 3px solid #e0a800; padding: 0.3em 0.6em; }
table { border-collapse: collapse; margin: 0.5em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th.text, td.text { text-align: left; }
thead th { background: #f3f5f8; position: sticky; top: 0; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
tbody tr:nth-child(even) { background: #fafafa; }
.scroll { overflow-x: auto; }
img { max-width: 100%; height: auto; border: 1px solid #eee; margin: 0.3em 0; }
.pictures { display: flex; flex-wrap: wrap; gap: 0 1em; align-items: flex-start; }
figure { margin: 0.5em 0; }
.pictures figure { flex: 0 1 calc(50% - 0.5em); min-width: 420px; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f6f8fa; padding: 0.6em; overflow-x: auto; max-height: 30em; white-space: pre-wrap; }
section.run { border-top: 1px solid #ccc; }
.status-completed { color: #176f2c; } .status-diverged, .status-failed { color: #b00020; }
.status-interrupted { color: #8a6d00; }
"""

# Sorting a table by a click on a header: numbers by value, text by locale; blanks always last.
JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headers = table.querySelectorAll("thead th");
  headers.forEach(function (th, column) {
    th.addEventListener("click", function () {
      var descending = th.getAttribute("aria-sort") === "ascending";
      headers.forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[column];
        return cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent;
      }
      var numeric = rows.every(function (row) { var k = key(row); return k === "" || isFinite(k); });
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === "" || y === "") { return (x === "") - (y === ""); }
        var order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
        return descending ? -order : order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


@dataclass(frozen=True)
class Cell:
    """A table cell: the text shown, and the value it sorts by (None: by its text)."""

    text: str
    sort: str | int | float | None = None
    link: str | None = None  # an anchor on the page (#id), for a run's row
    css: str = ""


def escape(text: object) -> str:
    return html.escape(str(text), quote=True)


def page(title: str, subtitle: str, body: Iterable[str]) -> str:
    """The whole HTML document: `body` is HTML that the caller built from these helpers."""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<link rel="icon" href="data:,">',  # no request for /favicon.ico
            f"<title>{escape(title)}</title>",
            f"<style>{CSS}</style>",
            "</head>",
            "<body>",
            f"<h1>{escape(title)}</h1>",
            f'<p class="meta">{escape(subtitle)}</p>',
            *body,
            f"<script>{JS}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )


def table(
    columns: list[str],
    rows: list[list[Cell]],
    text_columns: Iterable[str] = (),
    caption: str | None = None,
    sortable: bool = False,
    table_id: str | None = None,
) -> str:
    """A table; `text_columns` are left-aligned, the others (numbers) right-aligned."""
    left = set(text_columns)
    attrs = (' class="sortable"' if sortable else "") + (f' id="{escape(table_id)}"' if table_id else "")
    head = "".join(_header(column, column in left) for column in columns)
    body = "\n".join(_row(row, columns, left) for row in rows)
    out = f'<div class="scroll"><table{attrs}><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>'
    out += "</table></div>"
    return out + (f'<p class="caption">{escape(caption)}</p>' if caption else "")


def _row(row: list[Cell], columns: list[str], left: set[str]) -> str:
    return (
        "<tr>"
        + "".join(_cell(cell, column in left) for column, cell in zip(columns, row, strict=True))
        + "</tr>"
    )


def _header(column: str, text: bool) -> str:
    align = ' class="text"' if text else ""
    return f'<th{align} title="{escape(column)}">{escape(column)}</th>'


def _cell(cell: Cell, text: bool) -> str:
    classes = " ".join(filter(None, ["text" if text else "", cell.css]))
    attrs = f' class="{escape(classes)}"' if classes else ""
    if cell.sort is not None:
        attrs += f' data-sort="{escape(cell.sort)}"'
    content = escape(cell.text)
    if cell.link:
        content = f'<a href="#{escape(cell.link)}">{content}</a>'
    return f"<td{attrs}>{content}</td>"


def image(data: bytes, suffix: str, caption: str) -> str:
    """An image inline as a data: URI, with its file name as the caption."""
    mime = IMAGE_TYPES[suffix]
    uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return (
        f'<figure><img src="{uri}" alt="{escape(caption)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def pictures(figures: list[str]) -> str:
    """Figures side by side, as many as the width holds."""
    return '<div class="pictures">' + "".join(figures) + "</div>"


def preformatted(text: str, summary: str | None = None) -> str:
    """Text as it is (`<pre>`); with a `summary`, folded away behind it."""
    block = f"<pre>{escape(text)}</pre>"
    return f"<details><summary>{escape(summary)}</summary>{block}</details>" if summary else block


def heading(level: int, text: str, anchor: str | None = None) -> str:
    attrs = f' id="{escape(anchor)}"' if anchor else ""
    return f"<h{level}{attrs}>{escape(text)}</h{level}>"


def paragraph(text: str, css: str | None = None) -> str:
    return f'<p class="{escape(css)}">{escape(text)}</p>' if css else f"<p>{escape(text)}</p>"
