"""Charts as inline SVG drawn on the server (no script, nothing fetched): charts of the
last minutes with axes, a scale and a legend, and the small per-server sparkline.

Every text is escaped; the markup is well-formed XML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

SVG_NS = "http://www.w3.org/2000/svg"
# A time chart: its size and the margins that hold the scale, the legend and the labels.
WIDTH, HEIGHT = 480, 180
LEFT, RIGHT, TOP, BOTTOM = 46, 10, 26, 34
X_TICKS = 4                      # intervals on the time axis
SPARK_WIDTH, SPARK_HEIGHT = 120, 24


@dataclass
class Series:
    """One line of a chart: its legend, its CSS class, a value per point in time (None:
    no value then)."""

    legend: str
    css: str
    values: list


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (> 0)."""
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return step * power
    raise AssertionError("unreachable: 10 * power is above value")


def scale_top(series: list[Series], least: float) -> float:
    """The top of the value axis: the peak rounded up to a 1-2-5 step, ``least`` at least."""
    peak = max((value for line in series for value in line.values if value is not None),
               default=0)
    return nice_ceiling(max(peak, least))


def time_chart(chart_id: str, title: str, unit: str, series: list[Series], step: int,
               least: float = 1.0) -> str:
    """A line chart of values ``step`` seconds apart, oldest first and ending with the
    last completed step: the value axis from 0 to a 1-2-5 step above the peak (``least``
    at least), the time axis in seconds (or, from two minutes on, minutes) before now."""
    seconds = len(series[0].values) * step
    in_minutes = seconds >= 120
    top = scale_top(series, least)
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bottom = TOP + plot_height

    def x(age: float) -> float:
        return LEFT + plot_width * (1 - age / seconds)

    def y(value: float) -> float:
        return bottom - plot_height * value / top

    parts = [f"<text class=\"chart-title\" x=\"{LEFT}\" y=\"14\">{escape(title)}</text>"]
    # The value axis: gridlines and labels at 0, half the top and the top.
    parts.append("<g class=\"axis y\">")
    for value in (0, top / 2, top):
        parts.append(f"<line class=\"grid\" x1=\"{LEFT}\" x2=\"{WIDTH - RIGHT}\" "
                     f"y1=\"{y(value):.1f}\" y2=\"{y(value):.1f}\" />"
                     f"<text class=\"tick\" x=\"{LEFT - 4}\" y=\"{y(value) + 4:.1f}\" "
                     f"text-anchor=\"end\">{value:g}</text>")
    parts.append(f"<line class=\"axis-line\" x1=\"{LEFT}\" x2=\"{LEFT}\" y1=\"{TOP}\" "
                 f"y2=\"{bottom}\" /></g>")
    # The time axis: labels every quarter of the window, in seconds before now.
    parts.append(f"<g class=\"axis x\"><line class=\"axis-line\" x1=\"{LEFT}\" "
                 f"x2=\"{WIDTH - RIGHT}\" y1=\"{bottom}\" y2=\"{bottom}\" />")
    for tick in range(X_TICKS + 1):
        age = seconds * (X_TICKS - tick) / X_TICKS
        label = "now" if not age else f"-{age / 60:g} min" if in_minutes else f"-{age:g} s"
        parts.append(f"<text class=\"tick\" x=\"{x(age):.1f}\" y=\"{bottom + 14}\" "
                     f"text-anchor=\"middle\">{label}</text>")
    parts.append(f"</g><text class=\"axis-label\" x=\"{LEFT + plot_width / 2:.1f}\" "
                 f"y=\"{HEIGHT - 4}\" text-anchor=\"middle\">"
                 f"{'minutes' if in_minutes else 'seconds'} before now</text>"
                 f"<text class=\"axis-label\" x=\"12\" y=\"{TOP + plot_height / 2:.1f}\" "
                 f"text-anchor=\"middle\" transform=\"rotate(-90 12 "
                 f"{TOP + plot_height / 2:.1f})\">{escape(unit)}</text>")
    legend_x = WIDTH - RIGHT
    for line in reversed(series):
        parts.append(f"<text class=\"legend {line.css}\" x=\"{legend_x}\" y=\"14\" "
                     f"text-anchor=\"end\">{escape(line.legend)}</text>")
        legend_x -= 8 + 7 * len(line.legend)
    for line in series:
        for run in _runs(line.values):
            points = [(x(seconds - step * (index + 1)), y(value)) for index, value in run]
            if len(points) == 1:      # a lone value: a dot, as a line needs two
                parts.append(f"<circle class=\"dot {line.css}\" r=\"2\" "
                             f"cx=\"{points[0][0]:.1f}\" cy=\"{points[0][1]:.1f}\" />")
            listed = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f"<polyline class=\"series {line.css}\" "
                         f"data-series=\"{escape(line.legend)}\" points=\"{listed}\" />")
    span = f"{seconds // 60} min" if in_minutes else f"{seconds} s"
    label = f"{title}, last {span}, scale 0 to {top:g} {unit}"
    return (f"<svg xmlns=\"{SVG_NS}\" class=\"chart\" id=\"{chart_id}\" width=\"{WIDTH}\" "
            f"height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" "
            f"aria-label=\"{escape(label)}\"><title>{escape(label)}</title>"
            f"{''.join(parts)}</svg>")


def _runs(values: list) -> list[list[tuple[int, float]]]:
    """The stretches of ``values`` without a None, as (index, value) pairs."""
    runs: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for index, value in enumerate(values):
        if value is None:
            if current:
                runs.append(current)
            current = []
        else:
            current.append((index, value))
    if current:
        runs.append(current)
    return runs


def sparkline(requests: list[int], failures: list[int]) -> str:
    """A small chart without axes: requests per second as an area, failures as a red line."""
    peak = max(max(requests, default=0), max(failures, default=0), 1)
    step = SPARK_WIDTH / max(len(requests) - 1, 1)
    top = 2

    def points(values: list[int]) -> str:
        return " ".join(f"{i * step:.1f},{SPARK_HEIGHT - (SPARK_HEIGHT - top) * v / peak:.1f}"
                        for i, v in enumerate(values))

    label = (f"Requests per second over the last {len(requests)} s: "
             f"last second {requests[-1] if requests else 0}, peak {max(requests, default=0)}; "
             f"failures in that time: {sum(failures)}")
    shapes = [f"<polygon class=\"requests\" points=\"0,{SPARK_HEIGHT} {points(requests)} "
              f"{SPARK_WIDTH},{SPARK_HEIGHT}\" />"]
    if any(failures):
        shapes.append(f"<polyline class=\"failures\" points=\"{points(failures)}\" />")
    return (
        f"<svg xmlns=\"{SVG_NS}\" class=\"spark\" width=\"{SPARK_WIDTH}\" "
        f"height=\"{SPARK_HEIGHT}\" viewBox=\"0 0 {SPARK_WIDTH} {SPARK_HEIGHT}\" role=\"img\" "
        f"aria-label=\"{escape(label)}\"><title>{escape(label)}</title>{''.join(shapes)}</svg>"
    )
