"""Rendering of the report's document model: Markdown, and one self-contained HTML page.

A report is a list of sections, each a heading and blocks: :class:`Table` (header, rows, a
CSS class per row: "", "baseline" or "failed") and :class:`Paragraph` (text, possibly a
warning). Both renderings come from the same blocks, so they cannot drift apart. The HTML
embeds its figures as base64 data URIs and its style inline (opens offline, requests
nothing); the Markdown links its figures relatively. Every cell is escaped, so a run name
cannot break a table or inject markup.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MISSING = "–"
CSS_PIXELS_PER_INCH = 96
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


@dataclass
class Table:
    """A table block: header cells, rows of cells, and a CSS class per row."""

    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)  # per row: "", "baseline" or "failed"

    def add(self, cells: list[str], css_class: str = "") -> None:
        """Append a row and its class together (the two lists stay aligned)."""
        self.rows.append(cells)
        self.classes.append(css_class)


@dataclass
class Paragraph:
    """A text block; ``warning`` renders it highlighted (a bold quote in Markdown)."""

    text: str
    warning: bool = False


def fmt(value, digits: int = 3) -> str:
    """A number with ``digits`` decimals; None and NaN as the missing mark."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def md_cell(text: str) -> str:
    # Escaped so a run name or config cannot break the table or turn into markup or raw HTML.
    for char in "\\|*<":
        text = text.replace(char, "\\" + char)
    return text.replace("\n", " ")


def md_table(table: Table) -> str:
    if not table.rows:
        return "_(none)_"
    lines = ["| " + " | ".join(md_cell(h) for h in table.header) + " |", "|" + "---|" * len(table.header)]
    for cells, css in zip(table.rows, table.classes):
        cells = [md_cell(c) for c in cells]
        if css == "baseline":  # italic row, so baselines stand apart in plain text too
            cells = [f"*{c}*" if c and c != MISSING else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _text(value: str) -> str:
    """Escape for an HTML text node; attribute values use ``html.escape`` with quotes."""
    return html.escape(value, quote=False)


def _html_table(table: Table) -> str:
    if not table.rows:
        return "<p><em>(none)</em></p>"
    head = "".join(f"<th>{_text(h)}</th>" for h in table.header)
    rows = []
    for cells, css in zip(table.rows, table.classes):
        opening = f'<tr class="{css}">' if css else "<tr>"
        rows.append(opening + "".join(f"<td>{_text(c)}</td>" for c in cells) + "</tr>\n")
    body = "".join(rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def figure_list(figures) -> list[tuple[Path, str]]:
    items = figures.items() if isinstance(figures, Mapping) else figures
    return [(Path(path), str(caption)) for path, caption in items]


def render_markdown(title: str, meta: Mapping, sections, figures, out_dir: Path) -> str:
    parts = [f"# {title}", ""]
    parts += [f"- {md_cell(str(key))}: {md_cell(fmt(value))}" for key, value in meta.items()]
    for heading, blocks in sections:
        parts += ["", f"## {heading}", ""]
        for block in blocks:
            if isinstance(block, Table):
                parts += [md_table(block), ""]
            else:
                text = md_cell(block.text)
                parts += [f"> **{text}**" if block.warning else text, ""]
    if figures:
        parts += ["", "## Figures", ""]
        for path, caption in figures:
            link = Path(os.path.relpath(path.resolve(), out_dir.resolve())).as_posix()
            link = f"<{link}>" if " " in link else link
            parts += [f"![{md_cell(caption)}]({link})", "", f"*{md_cell(caption)}*", ""]
    return "\n".join(parts).rstrip() + "\n"


PAGE_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 75em; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead { background: #eef; }
tr.baseline { background: #f0f0f0; font-style: italic; }
td:first-child { white-space: nowrap; }
tr.failed { color: #a00; }
code { white-space: nowrap; font-size: 0.95em; }
.warning { background: #fff4e0; border-left: 4px solid #e69500; padding: 0.4em 0.8em; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dl.meta dt { font-weight: bold; } dl.meta dd { margin: 0; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; display: block; }
figcaption { color: #555; max-width: 60em; }
"""


def png_display_width(data: bytes) -> int | None:
    """The width in CSS pixels at which a PNG shows its physical size (96 px per inch, from
    its pixel width and the resolution in its pHYs chunk), or None without that chunk.

    matplotlib records the dpi a figure was saved at; shown at this width, a figure's text
    of 8 points reads as 8 points, whatever dpi it was rendered at.
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    width = struct.unpack(">I", data[16:20])[0]
    offset = 8
    while offset + 8 <= len(data):  # chunks: length, type, data, CRC; pHYs comes before the image data
        length, kind = struct.unpack(">I", data[offset:offset + 4])[0], data[offset + 4:offset + 8]
        if kind == b"pHYs" and length >= 9:
            per_metre, _, unit = struct.unpack(">IIB", data[offset + 8:offset + 17])
            if unit == 1 and per_metre > 0:  # 1: pixels per metre
                return round(width / (per_metre * 0.0254) * CSS_PIXELS_PER_INCH)
            return None
        if kind in (b"IDAT", b"IEND"):
            return None
        offset += 12 + length
    return None


_OPTION = re.compile(r"(?<![\w-])(--[A-Za-z][\w.=\-]*)")


def _options_as_code(text: str) -> str:
    """Command-line options in a paragraph (``--set``, ``--cv``) as code that does not break
    between its hyphens (a browser wraps "--set" as "-" and "-set")."""
    return _OPTION.sub(r"<code>\1</code>", text)


def anchor(heading: str) -> str:
    """The id of a heading in the HTML page: lower case, words joined by hyphens
    ("Runs" -> "runs", "Paired comparison with the best baseline" -> "paired-comparison-...")."""
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-") or "section"


def _html_figure(path: Path, caption: str, anchor: str = "") -> str:
    cap = _text(caption)
    alt = html.escape(caption, quote=True)
    if not path.is_file():
        return f'<p class="warning">Figure not found: {_text(str(path))} ({cap})</p>'
    mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
    raw = path.read_bytes()
    data = base64.b64encode(raw).decode("ascii")
    width = png_display_width(raw) if mime == "image/png" else None
    size = f' width="{width}"' if width else ""
    ident = f' id="{html.escape(anchor, quote=True)}"' if anchor else ""
    return (f'<figure{ident}><img src="data:{mime};base64,{data}"{size} alt="{alt}"><figcaption>{cap}</figcaption>'
            f'</figure>')


def render_html(title: str, meta: Mapping, sections, figures) -> str:
    body = [f"<h1>{_text(title)}</h1>"]
    if meta:
        body.append('<dl class="meta">' + "".join(
            f"<dt>{_text(str(k))}</dt><dd>{_text(fmt(v))}</dd>" for k, v in meta.items()) + "</dl>")
    for heading, blocks in sections:
        body.append(f'<h2 id="{anchor(heading)}">{_text(heading)}</h2>')
        for block in blocks:
            if isinstance(block, Table):
                body.append(_html_table(block))
            else:
                css = ' class="warning"' if block.warning else ""
                body.append(f"<p{css}>{_options_as_code(_text(block.text))}</p>")
    if figures:
        body.append('<h2 id="figures">Figures</h2>')
        body += [_html_figure(path, caption, f"figure-{anchor(path.stem)}") for path, caption in figures]
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{_text(title)}</title>\n'
            f"<style>{PAGE_CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")
