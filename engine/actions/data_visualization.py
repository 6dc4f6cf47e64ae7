"""``data_visualization`` actions: bar charts drawn as hand-written SVG.

The SVG holds one ``<rect>`` per bar (and no other ``<rect>``), the title, a y axis with
five ticks, and the labels under the bars (shortened with ``…`` when they do not fit;
each bar's ``<title>`` tooltip holds the full label and value). All text is XML-escaped
and characters XML 1.0 cannot hold are replaced with U+FFFD, so the file is always
well-formed. Negative values are drawn below the zero line.

Where a chart is written, when ``output_path`` is not given: ``<base_dir>/charts`` (the
``base_dir`` given to ``register_builtin_actions``), or ``./.orchestration/charts`` under
the current directory when there is none. The file is named
``<title slug>-<first 10 hex digits of the SVG's sha256>.svg``, so the same chart always
gets the same name and different charts never overwrite each other. An ``output_path``
that is an existing directory gets such a name inside it; any other ``output_path`` is
the file itself (parent directories are created). Files are written atomically.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from engine.actions._common import write_text_atomic

__all__ = ["MAX_BARS", "bound_chart_actions", "create_analysis_chart", "create_bar_chart", "render_svg"]

MAX_BARS = 500
_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_SLUG = re.compile(r"[^a-z0-9]+")
ChartAction = Callable[..., dict[str, Any]]


def _text(value: str) -> str:
    """``value`` made safe as XML text or attribute content."""
    return escape(_INVALID_XML.sub("\ufffd", value), {'"': "&quot;"})


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def _bars(data: object) -> list[tuple[str, float]]:
    if isinstance(data, Mapping):
        items = list(data.items())
    elif isinstance(data, list | tuple):
        items = []
        for i, pair in enumerate(data):
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise ValueError(f"data[{i}] must be a [label, value] pair, got {pair!r}")
            items.append((pair[0], pair[1]))
    else:
        raise ValueError(f"data must be a dict {{label: number}} or a list of [label, value] pairs, got {data!r}")
    if not items:
        raise ValueError("data is empty: a bar chart needs at least one bar")
    if len(items) > MAX_BARS:
        raise ValueError(f"data has {len(items)} bars; at most {MAX_BARS} can be drawn")
    bars: list[tuple[str, float]] = []
    for label, value in items:
        if not isinstance(label, str | int | float) or isinstance(label, bool):
            raise ValueError(f"label {label!r} must be a string or a number")
        if not _is_number(value):
            raise ValueError(f"value for label {str(label)!r} is not a finite number: {value!r}")
        bars.append((str(label), value))
    return bars


def _shorten(label: str, max_chars: int) -> str:
    if len(label) <= max_chars:
        return label
    return label[: max(max_chars - 1, 0)] + "…"


def render_svg(bars: Sequence[tuple[str, float]], title: str, width: int, height: int) -> str:
    """The SVG document for ``bars``."""
    left, right, top, bottom = 64.0, 16.0, 40.0 if title else 16.0, 48.0
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, v in bars]
    lo, hi = min(0.0, *values), max(0.0, *values)
    if hi == lo:
        hi = lo + 1.0

    def y_of(v: float) -> float:
        return top + (hi - v) / (hi - lo) * plot_h

    slot = plot_w / len(bars)
    bar_w = slot * 0.7
    zero = y_of(0.0)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f"<title>{_text(title or 'Bar chart')}</title>",
    ]
    if title:
        out.append(f'<text x="{width / 2:.2f}" y="24" text-anchor="middle" font-size="16">{_text(title)}</text>')
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        y = y_of(v)
        out.append(f'<line x1="{left - 4:.2f}" y1="{y:.2f}" x2="{width - right:.2f}" y2="{y:.2f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 8:.2f}" y="{y + 4:.2f}" text-anchor="end">{_text(_fmt(round(v, 6)))}</text>')
    out.append(f'<line x1="{left:.2f}" y1="{top:.2f}" x2="{left:.2f}" y2="{top + plot_h:.2f}" stroke="#333"/>')
    out.append(f'<line x1="{left:.2f}" y1="{zero:.2f}" x2="{width - right:.2f}" y2="{zero:.2f}" stroke="#333"/>')
    max_chars = max(int(slot / 7), 1)
    for i, (label, value) in enumerate(bars):
        x = left + slot * i + (slot - bar_w) / 2
        y = min(y_of(value), zero)
        h = abs(y_of(value) - zero)
        out.append(
            f'<rect x="{x:.2f}" y="{y:.2f}" width="{bar_w:.2f}" height="{h:.2f}" fill="#4e79a7">'
            f"<title>{_text(f'{label}: {_fmt(value)}')}</title></rect>"
        )
        cx = x + bar_w / 2
        out.append(
            f'<text x="{cx:.2f}" y="{height - bottom + 16:.2f}" text-anchor="middle">'
            f"{_text(_shorten(label, max_chars))}</text>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _size(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 160 <= value <= 10000:
        raise ValueError(f"{name} must be an integer between 160 and 10000, got {value!r}")
    return value


def _target(svg: str, title: str, output_path: str | None, base_dir: str | None) -> Path:
    slug = _SLUG.sub("-", title.lower()).strip("-")[:60] or "chart"
    name = f"{slug}-{hashlib.sha256(svg.encode('utf-8')).hexdigest()[:10]}.svg"
    if output_path is None:
        charts = Path(base_dir) if base_dir is not None else Path.cwd() / ".orchestration"
        return (charts / "charts" / name).resolve()
    if not isinstance(output_path, str | os.PathLike):
        raise ValueError(f"output_path must be a string, got {output_path!r}")
    target = Path(output_path)
    return (target / name if target.is_dir() else target).resolve()


def create_bar_chart(
    data: Mapping[str, Any] | Sequence[Any],
    title: str = "",
    output_path: str | None = None,
    width: int = 640,
    height: int = 400,
    *,
    base_dir: str | None = None,
) -> dict[str, Any]:
    """Draw a bar chart of ``data`` as an SVG file.

    Parameters:
        data: ``{label: number}``, or a list of ``[label, number]`` pairs (drawn in order;
            labels may repeat). 1 to 500 bars; numbers must be finite ints or floats.
        title: drawn above the chart and used to name the file.
        output_path: where to write the SVG (see the module docstring).
        width, height: the SVG size in pixels, 160..10000.
        base_dir: the directory whose ``charts`` folder holds unnamed charts; bound by
            ``register_builtin_actions``, not a task parameter.

    Returns ``{"path": str (absolute), "bars": int, "title": str, "max_value": int | float,
    "bytes": int (size of the file)}``.

    Raises ValueError naming the label of a value that is not a number, and for empty or
    malformed ``data``.
    """
    if title is None:
        title = ""
    if not isinstance(title, str):
        raise ValueError(f"title must be a string, got {title!r}")
    bars = _bars(data)
    svg = render_svg(bars, title, _size(width, "width"), _size(height, "height"))
    target = _target(svg, title, output_path, base_dir)
    size = write_text_atomic(target, svg)
    return {
        "path": os.fspath(target),
        "bars": len(bars),
        "title": title,
        "max_value": max(v for _, v in bars),
        "bytes": size,
    }


def create_analysis_chart(
    data: Mapping[str, Any],
    title: str = "Code analysis",
    output_path: str | None = None,
    *,
    base_dir: str | None = None,
) -> dict[str, Any]:
    """Chart the numeric top-level values of a dict, e.g. the result of
    ``static_analysis.analyze_code_quality``.

    Parameters:
        data: a dict; its top-level int/float values (not bools, not NaN or infinities)
            become bars, in the dict's order; other values are skipped.
        title, output_path, base_dir: as for :func:`create_bar_chart`.

    Returns what :func:`create_bar_chart` returns plus ``"labels"`` (the keys charted) and
    ``"skipped"`` (the other keys). Raises ValueError when ``data`` is not a dict or has no
    numeric top-level value.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"data must be a dict (e.g. an analyze_code_quality result), got {type(data).__name__}")
    numeric = {str(k): v for k, v in data.items() if _is_number(v)}
    if not numeric:
        raise ValueError(
            f"data has no numeric top-level values to chart (keys: {sorted(str(k) for k in data)}); "
            "pass a dict such as the result of static_analysis.analyze_code_quality"
        )
    result = create_bar_chart(numeric, title, output_path, base_dir=base_dir)
    result["labels"] = list(numeric)
    result["skipped"] = [str(k) for k in data if str(k) not in numeric]
    return result


@cache
def bound_chart_actions(base_dir: str | None) -> tuple[ChartAction, ChartAction]:
    """``(create_bar_chart, create_analysis_chart)`` with ``base_dir`` bound, as
    registrable actions without a ``base_dir`` parameter. Cached, so registering the
    same ``base_dir`` twice registers the same functions."""

    def bar_chart(
        data: Mapping[str, Any] | Sequence[Any],
        title: str = "",
        output_path: str | None = None,
        width: int = 640,
        height: int = 400,
    ) -> dict[str, Any]:
        return create_bar_chart(data, title, output_path, width, height, base_dir=base_dir)

    def analysis_chart(
        data: Mapping[str, Any], title: str = "Code analysis", output_path: str | None = None
    ) -> dict[str, Any]:
        return create_analysis_chart(data, title, output_path, base_dir=base_dir)

    for fn, original in ((bar_chart, create_bar_chart), (analysis_chart, create_analysis_chart)):
        fn.__doc__ = original.__doc__
        fn.__name__ = fn.__qualname__ = original.__name__
    return bar_chart, analysis_chart
