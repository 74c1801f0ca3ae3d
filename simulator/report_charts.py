"""The enforcement report's charts, drawn by matplotlib as SVG text to inline in the page:
no script, no network, the words stay text (searchable, selectable, printed sharp).

Statuses are told apart by lightness, hatching and a written word, never by hue alone
(white: open, grey: hatched, black: solid); other series use the Okabe-Ito palette, which
readers with any common colour-vision deficiency tell apart, with hatching as well."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from simulator.report_data import TrafficDay
from simulator.report_model import DeviceView, RunView

INK = "#1a1a1a"
STATUS_STYLE: dict[str, dict[str, str]] = {  # face, hatch, the colour of a word written on it
    "white": {"face": "#ffffff", "hatch": "", "text": INK},
    "grey": {"face": "#a6a6a6", "hatch": "///", "text": INK},
    "black": {"face": INK, "hatch": "", "text": "#ffffff"},
    "unknown": {"face": "#ffffff", "hatch": "xx", "text": INK},
}
# Okabe & Ito (2008), "Color Universal Design": orange, sky blue, bluish green, vermillion, blue, purple.
OKABE_ITO = ("#e69f00", "#56b4e9", "#009e73", "#d55e00", "#0072b2", "#cc79a7")
HATCHES = ("", "..", "\\\\", "//", "--", "++")
FAIL = "#d55e00"
LANE_POINTS = 540  # about the width of a lane chart's axes, in points (9 inches less the labels)
NO_STATUS = ("s", "#ffffff", "answer without a status (an error)")
MARKERS = {  # event kind -> marker, colour, legend label
    "notice": ("v", "#0072b2", "notice queued"),
    "sim": ("D", "#009e73", "SIM in/out"),
    "border": ("^", "#cc79a7", "left/entered the country"),
    "register": ("*", "#e69f00", "registered"),
    "stolen": ("X", INK, "reported stolen"),
    "recover": ("o", INK, "recovered"),
}
RC: dict[Any, Any] = {"svg.fonttype": "none", "svg.hashsalt": "eir-report", "text.parse_math": False, "font.size": 9,
      "font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"], "hatch.linewidth": 0.8}


def _svg(figure: Figure, salt: str) -> str:
    """The figure as an <svg> element (no XML prologue), its ids prefixed with ``salt`` so
    that several charts can share one page."""
    return _prefix_ids(_drawn(figure), _id_safe(salt))


def _drawn(figure: Figure) -> str:
    out = io.StringIO()
    with mpl.rc_context(RC):
        figure.savefig(out, format="svg", metadata={"Date": None, "Creator": None})
    text = out.getvalue()
    return text[text.index("<svg"):]


def _id_safe(salt: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", salt)


def _prefix_ids(svg: str, prefix: str) -> str:
    """The ids the SVG refers to (clip paths, hatches, markers), and the references, prefixed,
    for ids must be unique in a page and matplotlib numbers its own from 1 in each figure;
    the ids of plain groups (figure_1, axes_1...), referred to by nothing, are dropped."""
    referred = set(re.findall(r'(?:url\(#|href="#)([^")]+)', svg))

    def named(found: re.Match[str]) -> str:
        is_id = found[1][0].isspace()
        if is_id and found[2] not in referred:
            return ""
        return f"{found[1]}{prefix}-{found[2]}{found[3]}"

    return re.sub(r'(\sid="|url\(#|href="#)([^")]+)([")])', named, svg)


def _figure(width: float, height: float) -> Figure:
    with mpl.rc_context(RC):
        return Figure(figsize=(width, height), layout="constrained")


_LANES: dict[tuple[object, ...], str] = {}  # drawn lane charts by what they show (S13 and MAP runs often agree)


def status_lanes(run: RunView, salt: str) -> str | None:
    """A lane per device, coloured by its status from each answer to the next, days on the
    x axis, events marked; None when no device was answered."""
    lanes = [device for device in run.devices if device.statuses or device.events]
    if not any(device.statuses for device in lanes):
        return None
    key = (run.last_day, run.start_date, *((device.label, tuple((event.kind, event.day, event.text, event.status,
                                                                 event.failed) for event in device.events))
                                           for device in lanes))
    if key not in _LANES:
        if len(_LANES) > 256:
            _LANES.clear()
        _LANES[key] = _draw_lanes(run, lanes)
    return _prefix_ids(_LANES[key], _id_safe(salt))


def _draw_lanes(run: RunView, lanes: list[DeviceView]) -> str:
    with mpl.rc_context(RC):
        figure = _figure(9.0, 1.4 + 0.55 * len(lanes))
        axes = figure.add_subplot()
        for row, device in enumerate(lanes):
            _lane(axes, row, device, run.last_day)
        _events(axes, lanes, run.last_day)
        axes.set_yticks(range(len(lanes)), [device.label for device in lanes])
        axes.set_ylim(len(lanes) - 0.45, -0.75)
        axes.set_xlim(0.5, run.last_day + 0.5)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=2))
        axes.set_xlabel(f"day (day 1 = {run.start_date.isoformat()})")
        axes.grid(axis="x", color="#dddddd", linewidth=0.6)
        axes.set_axisbelow(True)
        _legend(axes, lanes)
        return _drawn(figure)


def _segments(device: DeviceView) -> list[tuple[int, str]]:
    """Where the device's status changes: (day, status), the later of two answers the same day."""
    found: list[tuple[int, str]] = []
    for day, status in device.statuses:
        if found and found[-1][0] == day:
            found.pop()
        if not found or found[-1][1] != status:
            found.append((day, status))
    return found


def _lane(axes: Axes, row: int, device: DeviceView, last_day: int) -> None:
    statuses = _segments(device)
    for index, (day, status) in enumerate(statuses):
        until = statuses[index + 1][0] if index + 1 < len(statuses) else last_day + 1
        style = STATUS_STYLE[status]
        axes.barh(row, until - day, left=day - 0.5, height=0.5, color=style["face"],
                  hatch=style["hatch"], edgecolor=INK, linewidth=0.8)
        if (until - day) / last_day * LANE_POINTS >= 36:  # the word where it fits (the legend names the fill)
            axes.text((day + until - 1) / 2, row, status, va="center", ha="center", fontsize=8, color=style["text"],
                      fontweight="bold",
                      bbox={"boxstyle": "square,pad=0.1", "facecolor": style["face"], "edgecolor": "none"})


def _events(axes: Axes, lanes: list[DeviceView], last_day: int) -> None:
    """Notices above each lane, named; SIM, border and list events below it."""
    for row, device in enumerate(lanes):
        beside: dict[int, int] = {}  # markers already below the lane that day: the next goes to their right
        step = max(0.25, last_day / 80)
        for kind, (marker, colour, _label) in MARKERS.items():
            days = [event.day for event in device.events if event.kind == kind]
            if not days:
                continue
            if kind == "notice":
                axes.scatter(days, [row - 0.38] * len(days), marker=marker, s=30, color=colour, edgecolors=INK,
                             linewidths=0.5, zorder=3, clip_on=False)
                continue
            places = []
            for day in days:
                places.append(day + step * beside.get(day, 0))
                beside[day] = beside.get(day, 0) + 1
            axes.scatter(places, [row + 0.38] * len(places), marker=marker, s=30, color=colour, edgecolors=INK,
                         linewidths=0.5, zorder=3, clip_on=False)
        _notice_names(axes, row, device, last_day)
        errors = [event.day for event in device.events if event.kind == "answer" and event.status is None]
        if errors:
            axes.scatter(errors, [row] * len(errors), marker=NO_STATUS[0], s=40, color=NO_STATUS[1], edgecolors=INK,
                         linewidths=0.8, zorder=3)
        failed = sorted({event.day for event in device.events if event.failed})
        if failed:
            axes.scatter(failed, [row] * len(failed), marker="X", s=90, color=FAIL, edgecolors="#ffffff",
                         linewidths=0.8, zorder=4, clip_on=False)


def _notice_names(axes: Axes, row: int, device: DeviceView, last_day: int) -> None:
    """Each notice's event beside its marker, raised a line above a name it would overwrite."""
    near = max(2.0, last_day / 9)
    placed: list[tuple[int, int]] = []  # (day, level)
    for event in (event for event in device.events if event.kind == "notice"):
        taken = {level for day, level in placed if abs(day - event.day) < near}
        level = min(set(range(len(placed) + 1)) - taken)
        placed.append((event.day, level))
        axes.annotate(event.text, (event.day, row - 0.38), xytext=(4, 1 + 8 * level), textcoords="offset points",
                      fontsize=7, color="#0072b2", annotation_clip=False)


def _legend(axes: Axes, lanes: list[DeviceView]) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    seen = {status for device in lanes for _, status in device.statuses}
    handles: list[Artist] = [Patch(facecolor=STATUS_STYLE[s]["face"], hatch=STATUS_STYLE[s]["hatch"], edgecolor=INK,
                                   label=s) for s in STATUS_STYLE if s in seen]
    kinds = {event.kind for device in lanes for event in device.events}
    handles += [Line2D([], [], marker=marker, linestyle="", color=colour, markeredgecolor=INK, label=label)
                for kind, (marker, colour, label) in MARKERS.items() if kind in kinds]
    if any(event.kind == "answer" and event.status is None for device in lanes for event in device.events):
        handles.append(Line2D([], [], marker=NO_STATUS[0], linestyle="", color=NO_STATUS[1], markeredgecolor=INK,
                              label=NO_STATUS[2]))
    if any(device.failures for device in lanes):
        handles.append(Line2D([], [], marker="X", linestyle="", color=FAIL, markersize=9, label="failed step"))
    figure = axes.get_figure()
    assert isinstance(figure, Figure)
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), frameon=False, fontsize=8)


# a traffic run (simulator/report_data.py)

def traffic_charts(days: Sequence[TrafficDay], salt: str) -> dict[str, str]:
    """The share of white, grey and black per day; the notices per day by event; the
    devices cut off per day. Empty when no day was played."""
    if not days:
        return {}
    return {"shares": _shares(days, salt + "-shares"), "notices": _notices(days, salt + "-notices"),
            "cut_off": _cut_off(days, salt + "-cut")}


def _day_axes(days: Sequence[TrafficDay], height: float) -> tuple[Figure, Axes, list[int]]:
    figure = _figure(9.0, height)
    axes = figure.add_subplot()
    numbers = [day.day for day in days]
    axes.set_xlim(min(numbers) - 0.6, max(numbers) + 0.6)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=2))
    axes.set_xlabel(f"day (day 1 = {days[0].local_date.isoformat()})" if days[0].day == 1 else "day")
    axes.grid(axis="y", color="#dddddd", linewidth=0.6)
    axes.set_axisbelow(True)
    return figure, axes, numbers


def _shares(days: Sequence[TrafficDay], salt: str) -> str:
    with mpl.rc_context(RC):
        figure, axes, numbers = _day_axes(days, 3.4)
        bottom = [0.0] * len(days)
        for status in ("white", "grey", "black"):
            shares = [100.0 * day.answers.get(status, 0) / (_total(day) or 1) for day in days]
            style = STATUS_STYLE[status]
            axes.bar(numbers, shares, bottom=bottom, width=0.8, color=style["face"],
                     hatch=style["hatch"], edgecolor=INK, linewidth=0.5, label=status)
            bottom = [low + share for low, share in zip(bottom, shares, strict=True)]
        axes.set_ylim(0, 100)
        axes.set_ylabel("share of answers (%)")
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, 1.16), ncols=3, frameon=False)
        return _svg(figure, salt)


def _total(day: TrafficDay) -> int:
    return sum(day.answers.get(status, 0) for status in ("white", "grey", "black"))


def _notices(days: Sequence[TrafficDay], salt: str) -> str:
    events = list(dict.fromkeys(event for day in days for event in day.notices))
    with mpl.rc_context(RC):
        figure, axes, numbers = _day_axes(days, 3.0)
        bottom = [0] * len(days)
        for index, event in enumerate(events):
            counts = [day.notices.get(event, 0) for day in days]
            axes.bar(numbers, counts, bottom=bottom, width=0.8, color=OKABE_ITO[index % len(OKABE_ITO)],
                     hatch=HATCHES[index % len(HATCHES)], edgecolor=INK, linewidth=0.5, label=event)
            bottom = [low + count for low, count in zip(bottom, counts, strict=True)]
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel("notices queued")
        if events:
            axes.legend(loc="upper center", bbox_to_anchor=(0.5, 1.18), ncols=len(events), frameon=False)
        return _svg(figure, salt)


def _cut_off(days: Sequence[TrafficDay], salt: str) -> str:
    with mpl.rc_context(RC):
        figure, axes, numbers = _day_axes(days, 2.6)
        axes.bar(numbers, [day.cut_off for day in days], width=0.8, color=INK, edgecolor=INK,
                 label="devices cut off (first black answer)")
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel("devices cut off")
        return _svg(figure, salt)


def svg_ids(svg: str) -> list[str]:
    """The ids an SVG defines (the tests check that two charts on one page share none)."""
    return re.findall(r'\sid="([^"]+)"', svg)
