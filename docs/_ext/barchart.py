"""``.. bar-chart:: diagrams/x.csv``: a CSV file drawn as an inline SVG bar chart.

The numbers live in the CSV alone, so updating them updates the chart (and a
``csv-table`` of the same file). The first row names the columns::

    panel,group,nginx X-Accel-Redirect,perlbal,wsgi-reproxy
    "1 GiB, one download: MB/s",gunicorn 2x8,652,895,1438
    "1 GiB, one download: MB/s",uWSGI 4x4,920,699,1905

Rows with the same ``panel`` (its title, unit included) share one scale, starting at zero;
each row is a group of horizontal bars, one per series column, each labelled with its
series and its value as written. Pure Python, no plotting library; text is drawn in the
page's colour, so the chart reads in furo's light and dark modes. The SVG carries the
data as text too (``<title>`` and ``<desc>``) for screen readers. A missing file or a
cell that is not a number is a build error, not a silently empty chart.

Options: ``:caption:`` (text under the chart), ``:alt:`` (the SVG's title; by default
the panels' titles).
"""

from __future__ import annotations

import csv
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

__version__ = "1.0"

COLOURS = ("#8895a7", "#d08c3a", "#1f6fb2")  # series in column order; blue as in the diagrams
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif"
CHAR_WIDTH = 7.2  # px per character at 13 px, a generous average: labels are never clipped
BAR, BAR_GAP, GROUP_GAP, TITLE = 17, 4, 12, 26
BAR_AREA, VALUE_AREA, PAD = 330, 56, 8
RAISE = 4.5  # from the middle of a 12-13 px line of text down to its baseline


@dataclass(frozen=True, slots=True)
class Bar:
    series: str
    text: str  # the value as written in the CSV
    number: float


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    bars: tuple[Bar, ...]


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    groups: tuple[Group, ...]

    @property
    def top(self) -> float:
        return max((bar.number for group in self.groups for bar in group.bars), default=0)


def read_chart(path: Path) -> tuple[Panel, ...]:
    """The panels of a CSV file; ``ValueError`` saying which line is wrong."""
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.reader(file)
        rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    if len(rows) < 2 or len(rows[0][1]) < 3:
        raise ValueError("needs a header (panel, group, then one column per series) and a row")
    header = [cell.strip() for cell in rows[0][1]]
    panels: dict[str, list[Group]] = {}
    for line, row in rows[1:]:
        if len(row) != len(header):
            raise ValueError(f"line {line} has {len(row)} cells, the header {len(header)}")
        cells = [cell.strip() for cell in row]
        try:
            bars = tuple(
                Bar(series, text, float(text))
                for series, text in zip(header[2:], cells[2:], strict=True)
            )
        except ValueError:
            raise ValueError(f"line {line}: every series cell must be a number: {row}") from None
        if not all(math.isfinite(bar.number) and bar.number >= 0 for bar in bars):
            raise ValueError(f"line {line}: bars start at zero, values must be finite, >= 0")
        panels.setdefault(cells[0], []).append(Group(cells[1], bars))
    return tuple(Panel(title, tuple(groups)) for title, groups in panels.items())


def describe(panels: tuple[Panel, ...]) -> str:
    """The chart's data in words, for its ``<desc>``."""

    def words(group: Group) -> str:
        return f"{group.name}: " + ", ".join(f"{bar.series} {bar.text}" for bar in group.bars)

    return " ".join(f"{p.title}. " + "; ".join(map(words, p.groups)) + "." for p in panels)


def render_svg(panels: tuple[Panel, ...], title: str, ident: str) -> str:
    """The chart as one ``<svg>`` element, sized in CSS pixels and allowed to shrink;
    ``ident`` makes its element ids unique in the page."""
    groups = [group for panel in panels for group in panel.groups]
    group_width = PAD + CHAR_WIDTH * max(len(group.name) for group in groups)
    series_width = PAD + CHAR_WIDTH * 0.92 * max(len(b.series) for g in groups for b in g.bars)
    bars_x = group_width + series_width + PAD
    out: list[str] = []
    y = 0.0
    for panel in panels:
        y += TITLE
        out.append(f'<text x="0" y="{y - 9:g}" font-weight="600">{html.escape(panel.title)}</text>')
        for group in panel.groups:
            y = draw_group(out, group, BAR_AREA / panel.top if panel.top else 0, bars_x, y)
    width, height = round(bars_x + BAR_AREA + VALUE_AREA), round(y)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="bar-chart" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" style="max-width:100%;height:auto;{FONT}" '
        f'fill="currentColor" font-size="13">'
        f'<title id="{ident}-title">{html.escape(title)}</title>'
        f'<desc id="{ident}-desc">{html.escape(describe(panels))}</desc>' + "".join(out) + "</svg>"
    )


def draw_group(out: list[str], group: Group, scale: float, bars_x: float, y: float) -> float:
    """Append one group's label and bars, from ``y`` down; return where the next starts."""
    middle = y + (len(group.bars) * (BAR + BAR_GAP) - BAR_GAP) / 2
    out.append(f'<text x="0" y="{middle + RAISE:g}">{html.escape(group.name)}</text>')
    for index, bar in enumerate(group.bars):
        length = max(bar.number * scale, 1)  # a zero still shows where its bar would be
        baseline = y + BAR / 2 + RAISE
        out.append(
            f'<text x="{bars_x - PAD:g}" y="{baseline:g}" text-anchor="end" font-size="12">'
            f"{html.escape(bar.series)}</text>"
            f'<rect x="{bars_x:g}" y="{y:g}" width="{length:.1f}" height="{BAR}" rx="2" '
            f'fill="{COLOURS[index % len(COLOURS)]}"/>'
            f'<text x="{bars_x + length + 5:.1f}" y="{baseline:g}" font-size="12" '
            f'font-variant-numeric="tabular-nums">{html.escape(bar.text)}</text>'
        )
        y += BAR + BAR_GAP
    return y + GROUP_GAP - BAR_GAP


class BarChart(SphinxDirective):
    """``.. bar-chart:: path/to/data.csv`` (relative to the page, or ``/`` for the docs)."""

    required_arguments = 1
    option_spec = {"caption": directives.unchanged, "alt": directives.unchanged}  # noqa: RUF012

    def run(self) -> list[nodes.Node]:
        relative, absolute = self.env.relfn2path(self.arguments[0], self.env.docname)
        self.env.note_dependency(relative)  # a changed CSV rebuilds the page
        try:
            panels = read_chart(Path(absolute))
        except (OSError, ValueError) as error:
            raise self.error(f"bar-chart: {relative}: {error}") from None
        title = self.options.get("alt") or "Bar chart: " + "; ".join(p.title for p in panels)
        ident = f"bar-chart-{self.env.new_serialno('bar-chart')}"
        raw = nodes.raw("", render_svg(panels, title, ident), format="html")
        if "caption" not in self.options:
            return [raw]
        figure = nodes.figure("", raw, classes=["bar-chart"])
        figure += nodes.caption(self.options["caption"], self.options["caption"])
        return [figure]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("bar-chart", BarChart)
    return {"version": __version__, "parallel_read_safe": True, "parallel_write_safe": True}
