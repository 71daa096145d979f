"""Server-rendered SVG: each team's best score over time (no JavaScript, no chart library)."""
from __future__ import annotations

from datetime import datetime
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

PALETTE = ("#b3261e", "#0b5cad", "#1e7d32", "#a66300", "#6a1b9a", "#00838f", "#5d4037", "#c2185b",
           "#455a64", "#827717")
WIDTH, HEIGHT = 720, 360
LEFT, RIGHT, TOP, BOTTOM = 64, 170, 20, 44
LOCAL_TZ = ZoneInfo("Asia/Shanghai")


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def best_over_time_svg(series: dict[str, list[tuple[datetime, float]]], title: str, empty_text: str,
                       time_label: str = "UTC+8") -> str:
    """A step chart of each team's running best score; the legend lists teams in the given order."""
    points = [(t, v) for pts in series.values() for t, v in pts]
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
            f'role="img" aria-label="{escape(title, {chr(34): "&quot;"})}"><title>{escape(title)}</title>')
    if not points:
        return (head + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#5c6b7a" '
                f'font-size="14">{escape(empty_text)}</text></svg>')
    t0 = min(t for t, _ in points).timestamp()
    t1 = max(t for t, _ in points).timestamp()
    lo, hi = min(v for _, v in points), max(v for _, v in points)
    if hi == lo:
        lo, hi = lo - (abs(lo) * 0.05 or 1), hi + (abs(hi) * 0.05 or 1)
    if t1 == t0:
        t0, t1 = t0 - 3600, t1 + 3600
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: datetime) -> float:
        return LEFT + (t.timestamp() - t0) / (t1 - t0) * plot_w

    def y(v: float) -> float:
        return TOP + (hi - v) / (hi - lo) * plot_h

    parts = [head, f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#dde3ea"/>']
    for i in range(5):
        value = lo + (hi - lo) * i / 4
        yy = y(value)
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#eef2f6"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end" font-size="11" '
                     f'fill="#5c6b7a">{_fmt(value)}</text>')
    for frac in (0.0, 0.5, 1.0):
        at = datetime.fromtimestamp(t0 + (t1 - t0) * frac, LOCAL_TZ)
        xx = LEFT + plot_w * frac
        anchor = "start" if frac == 0 else ("end" if frac == 1 else "middle")
        parts.append(f'<text x="{xx:.1f}" y="{TOP + plot_h + 18}" text-anchor="{anchor}" font-size="11" '
                     f'fill="#5c6b7a">{at.strftime("%m-%d %H:%M")}</text>')
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle" font-size="11" '
                 f'fill="#5c6b7a">{escape(time_label)}</text>')
    end = max(t for t, _ in points)
    for i, (name, pts) in enumerate(series.items()):
        if not pts:
            continue
        colour = PALETTE[i % len(PALETTE)]
        coords: list[str] = []
        for j, (t, v) in enumerate(pts):
            if j:
                coords.append(f"{x(t):.1f},{y(pts[j - 1][1]):.1f}")  # a step: the best holds until improved
            coords.append(f"{x(t):.1f},{y(v):.1f}")
        coords.append(f"{x(end):.1f},{y(pts[-1][1]):.1f}")
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(coords)}">'
                     f'<title>{escape(name)}: {_fmt(pts[-1][1])}</title></polyline>')
        for t, v in pts:
            parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}"/>')
        ly = TOP + 14 + i * 18
        parts.append(f'<rect x="{WIDTH - RIGHT + 12}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 28}" y="{ly}" font-size="12" fill="#1d2733">'
                     f'{escape(name[:18])}</text>')
    parts.append("</svg>")
    return "".join(parts)
