"""The forecast as a picture: one row per simulated day, one mark per backup alive at its end, placed by age.

Standard library only (the picture is a few thousand plain elements). Rows are the days `simulate.sampled_days` chose
(at most ~120), oldest day at the top; the x axis is the age of each backup at the end of that day on a log scale, so
that the dailies of the last week and the monthlies of two years ago are both readable. A GFS policy shows as columns
of marks sliding right and thinning out; an outage as a band of shaded rows followed by a diagonal hole. The summary
figures and the legend sit in the top-right corner, beside the plot, so that they never hide a mark.

Every row is a `<g class="row" data-date=... data-kept=...>` holding one `<circle>` per backup (class `k` kept, `p`
kept but pending deletion, `f` failed, `o` another status): tests and scripts can read the picture back. The same
forecast gives byte-identical output.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from html import escape
from typing import Final
from zoneinfo import ZoneInfo

from ges_retention.forecast import Day, Forecast

__all__ = ["render_svg"]

_WIDTH: Final = 1220
_PLOT_X0: Final = 110.0
_PLOT_X1: Final = 830.0
_PANEL_X: Final = 862.0
_PLOT_Y0: Final = 92.0
_PLOT_H_MAX: Final = 620.0
_BOTTOM: Final = 78.0
_MIN_AGE_D: Final = 1 / 24  # one hour: younger marks sit on the left edge

_KINDS: Final = (
    ("kept", "k", "#2563eb", "kept success (a restore point)"),
    ("pending", "p", "#f59e0b", "kept, pending deletion (confirm_after)"),
    ("failed", "f", "#dc2626", "failed backup, not deleted yet"),
    ("other", "o", "#6b7280", "other status (running, unknown)"),
)
_CLASS = {kind: css for kind, css, _, _ in _KINDS}
_TICKS: Final = (
    (1 / 24, "1h"),
    (6 / 24, "6h"),
    (1.0, "1d"),
    (2.0, "2d"),
    (7.0, "1w"),
    (14.0, "2w"),
    (30.0, "1mo"),
    (91.0, "3mo"),
    (182.0, "6mo"),
    (365.0, "1y"),
    (730.0, "2y"),
    (1095.0, "3y"),
    (1825.0, "5y"),
    (3650.0, "10y"),
    (7300.0, "20y"),
)
_STYLE: Final = (
    "text{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;fill:#1f2937}"
    ".t{font-size:19px;font-weight:bold}.s{font-size:12.5px;fill:#4b5563}.l{font-size:11px}"
    ".a{font-size:12.5px;fill:#374151}.h{font-size:13.5px;font-weight:bold}.v{font-size:13px}"
    ".n{font-size:13px;font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-weight:bold}"
    ".grid{stroke:#e5e7eb;stroke-width:1}.axis{stroke:#6b7280;stroke-width:1}"
    ".k{fill:#2563eb}.p{fill:#f59e0b}.f{fill:#dc2626}.o{fill:#6b7280}"
    ".q{font-size:12px;font-weight:bold;fill:#6d28d9;paint-order:stroke;stroke:#fff;stroke-width:4px}"
    ".out{fill:#fde68a}.stop{fill:#dc2626}.quota{stroke:#7c3aed;stroke-width:1.5;stroke-dasharray:6 4}"
)


def _f(value: float) -> str:
    """Coordinates with one decimal, without a trailing `.0`: compact and deterministic."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def render_svg(forecast: Forecast, *, caption: str = "") -> str:
    """The SVG document for `forecast`; `caption` (the scenario in words) goes under the title."""
    rows = _drawn_rows(forecast.days)
    row_h = max(4.0, min(14.0, _PLOT_H_MAX / max(1, len(rows))))
    plot_h = row_h * len(rows)
    plot_y1 = _PLOT_Y0 + plot_h
    height = max(plot_y1 + _BOTTOM, _PLOT_Y0 + 470)
    ages_d = [m.age_ms / 86_400_000 for day in rows for m in day.marks or ()]
    youngest_d, oldest_d = min(ages_d, default=1.0), max(ages_d, default=7.0)
    lo = math.log10(max(_MIN_AGE_D, min(0.5, youngest_d) * 0.8))
    hi = math.log10(max(7.0, oldest_d) * 1.15)

    def x_of(age_days: float) -> float:
        fraction = (math.log10(max(age_days, _MIN_AGE_D)) - lo) / (hi - lo)
        return _PLOT_X0 + fraction * (_PLOT_X1 - _PLOT_X0)

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_f(height)}" '
        f'viewBox="0 0 {_WIDTH} {_f(height)}" role="img">',
        f"<title>What policy {escape(forecast.policy)} keeps over {len(forecast.days)} simulated days</title>",
        f"<style>{_STYLE}</style>",
        f'<rect width="{_WIDTH}" height="{_f(height)}" fill="#ffffff"/>',
        f'<text class="t" x="{_f(_PLOT_X0 - 80)}" y="30">ges-retention simulate: policy {escape(forecast.policy)}, '
        f"{len(forecast.days)} days from {forecast.start.astimezone(ZoneInfo(forecast.timezone)).date().isoformat()} "
        f"({escape(forecast.timezone)})</text>",
    ]
    if caption:
        out.append(f'<text class="s" x="{_f(_PLOT_X0 - 80)}" y="52">{escape(caption)}</text>')
    out.extend(_x_axis(x_of, lo, hi, plot_y1))
    out.extend(_rows(rows, row_h, x_of))
    out.extend(_y_axis(rows, row_h, len(forecast.days)))
    out.extend(_quota_line(forecast, rows, row_h))
    out.append(
        f'<rect x="{_f(_PLOT_X0)}" y="{_f(_PLOT_Y0)}" width="{_f(_PLOT_X1 - _PLOT_X0)}" height="{_f(plot_h)}" '
        'fill="none" stroke="#9ca3af"/>'
    )
    out.extend(_panel(forecast))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _x_axis(x_of: Callable[[float], float], lo: float, hi: float, plot_y1: float) -> list[str]:
    out = []
    for age_days, label in _TICKS:
        if math.log10(age_days) > hi:
            break
        if math.log10(age_days) < lo:
            continue
        x = _f(x_of(age_days))
        out.append(f'<line class="grid" x1="{x}" y1="{_f(_PLOT_Y0)}" x2="{x}" y2="{_f(plot_y1)}"/>')
        out.append(f'<line class="axis" x1="{x}" y1="{_f(plot_y1)}" x2="{x}" y2="{_f(plot_y1 + 5)}"/>')
        out.append(f'<text class="l" x="{x}" y="{_f(plot_y1 + 18)}" text-anchor="middle">{label}</text>')
    mid = _f((_PLOT_X0 + _PLOT_X1) / 2)
    out.append(
        f'<text class="a" x="{mid}" y="{_f(plot_y1 + 42)}" text-anchor="middle">'
        "age of each backup alive at the end of the day (log scale) \u2192 older</text>"
    )
    return out


def _drawn_rows(days: tuple[Day, ...]) -> list[Day]:
    """The sampled days, each standing for the days since the previous row: an outage or a safety stop on any of
    them shows on the row, so that sampling never hides one."""
    rows = []
    outage, stops = False, 0
    for day in days:
        outage, stops = outage or day.outage, stops + day.safety_stops
        if day.marks is not None:
            rows.append(replace(day, outage=outage, safety_stops=stops))
            outage, stops = False, 0
    return rows


def _rows(rows: list[Day], row_h: float, x_of: Callable[[float], float]) -> list[str]:
    radius = _f(max(1.4, min(3.2, row_h * 0.4)))
    width = _f(_PLOT_X1 - _PLOT_X0)
    out = []
    for index, day in enumerate(rows):
        top = _PLOT_Y0 + index * row_h
        y = _f(top + row_h / 2)
        out.append(f'<g class="row" data-date="{day.date.isoformat()}" data-kept="{day.kept}">')
        if day.outage:
            out.append(f'<rect class="out" x="{_f(_PLOT_X0)}" y="{_f(top)}" width="{width}" height="{_f(row_h)}"/>')
        if day.safety_stops:
            out.append(f'<rect class="stop" x="{_f(_PLOT_X0 - 9)}" y="{_f(top)}" width="6" height="{_f(row_h)}"/>')
        for mark in day.marks or ():
            x = _f(x_of(mark.age_ms / 86_400_000))
            out.append(f'<circle class="{_CLASS[mark.kind]}" cx="{x}" cy="{y}" r="{radius}"/>')
        out.append("</g>")
    return out


def _y_axis(rows: list[Day], row_h: float, days: int) -> list[str]:
    if not rows:
        return []
    labels = max(1, min(len(rows), int(len(rows) * row_h / 48)))  # a date label every ~48 px
    picked = sorted({round(i * (len(rows) - 1) / max(1, labels - 1)) for i in range(labels)} | {len(rows) - 1})
    out = []
    for index in picked:
        y = _PLOT_Y0 + index * row_h + row_h / 2
        out.append(f'<line class="axis" x1="{_f(_PLOT_X0 - 14)}" y1="{_f(y)}" x2="{_f(_PLOT_X0 - 10)}" y2="{_f(y)}"/>')
        out.append(
            f'<text class="l" x="{_f(_PLOT_X0 - 16)}" y="{_f(y + 4)}" text-anchor="end">'
            f"{rows[index].date.isoformat()}</text>"
        )
    every = "every day" if len(rows) == days else f"one row per ~{days / len(rows):.0f} days"
    mid_y = _f(_PLOT_Y0 + len(rows) * row_h / 2)
    out.append(
        f'<text class="a" x="18" y="{mid_y}" text-anchor="middle" transform="rotate(-90 18 {mid_y})">'
        f"simulated day ({every}) \u2192 later</text>"
    )
    return out


def _quota_line(forecast: Forecast, rows: list[Day], row_h: float) -> list[str]:
    if forecast.quota_exceeded_on is None:
        return []
    index = next((i for i, day in enumerate(rows) if day.date >= forecast.quota_exceeded_on), None)
    if index is None:
        return []
    y = _f(_PLOT_Y0 + index * row_h)
    return [
        f'<line class="quota" x1="{_f(_PLOT_X0)}" y1="{y}" x2="{_f(_PLOT_X1)}" y2="{y}"/>',
        f'<text class="q" x="{_f(_PLOT_X0 + 6)}" y="{_f(float(y) - 4)}">'
        f"more than {forecast.quota} backups from here</text>",
    ]


def _panel(forecast: Forecast) -> list[str]:
    """The summary figures and the legend, top right."""
    gaps = dict(forecast.longest_gap_hours)
    bands = "  ".join(f"{label} {count}" for label, count in forecast.age_bands)
    oldest = forecast.oldest_restore_point_days
    if forecast.quota is None:
        quota = ("quota", "not given")
    elif forecast.quota_exceeded_on is None:
        quota = (f"quota ({forecast.quota} backups)", "never exceeded")
    else:
        quota = (f"quota ({forecast.quota} backups)", f"exceeded {forecast.quota_exceeded_on.isoformat()}")
    figures = [
        ("steady state", f"{forecast.steady_state} kept"),
        ("peak", f"{forecast.peak} kept"),
        ("oldest restore point", "none" if oldest is None else f"{oldest:g} days"),
        ("longest gap, last 90 days", _hours(gaps.get("90d"))),
        ("longest gap, last year", _hours(gaps.get("1y"))),
        ("safety stops", str(forecast.safety_stops)),
        quota,
    ]
    x = _f(_PANEL_X)
    value_x = _f(_PANEL_X + 178)
    out = [
        f'<rect x="{_f(_PANEL_X - 14)}" y="{_f(_PLOT_Y0)}" width="{_f(_WIDTH - _PANEL_X)}" height="448" rx="6" '
        'fill="#f9fafb" stroke="#d1d5db"/>',
        f'<text class="h" x="{x}" y="{_f(_PLOT_Y0 + 26)}">Summary</text>',
    ]
    y = _PLOT_Y0 + 50
    for label, value in figures:
        out.append(f'<text class="v" x="{x}" y="{_f(y)}">{label}</text>')
        out.append(f'<text class="n" x="{value_x}" y="{_f(y)}">{escape(value)}</text>')
        y += 21
    out.append(f'<text class="v" x="{x}" y="{_f(y)}">restore points by age at the end</text>')
    out.append(f'<text class="n" x="{x}" y="{_f(y + 20)}">{escape(bands)}</text>')
    y += 58
    out.append(f'<text class="h" x="{x}" y="{_f(y)}">Legend</text>')
    y += 22
    for _kind, css, _colour, text in _KINDS:
        out.append(f'<circle class="{css}" cx="{_f(_PANEL_X + 6)}" cy="{_f(y - 4)}" r="4.5"/>')
        out.append(f'<text class="v" x="{_f(_PANEL_X + 20)}" y="{_f(y)}">{text}</text>')
        y += 20
    out.append(f'<rect class="out" x="{x}" y="{_f(y - 12)}" width="13" height="11"/>')
    out.append(f'<text class="v" x="{_f(_PANEL_X + 20)}" y="{_f(y)}">outage: no backup created that day</text>')
    y += 20
    out.append(f'<rect class="stop" x="{_f(_PANEL_X + 3)}" y="{_f(y - 12)}" width="6" height="11"/>')
    out.append(f'<text class="v" x="{_f(_PANEL_X + 20)}" y="{_f(y)}">safety stop: that run deleted nothing</text>')
    return out


def _hours(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:g} h ({value / 24:.1f} d)" if value >= 48 else f"{value:g} h"
