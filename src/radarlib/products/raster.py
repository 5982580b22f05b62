"""Fast PNG images of gridded data: colour lookup, and a matplotlib frame drawn once and reused.

Drawing axes, ticks, a colour bar and text with matplotlib costs 0.3-1 s per image, far more
than the data. A :class:`Frame` (figure background with axes, ticks, colour bar and labels;
an overlay with the range rings; the pixel box of the axes) is drawn once per layout and kept
by the worker process; each image then costs a colour lookup, a nearest-pixel resampling of
the grid into the axes box, an alpha blend and the title text (Pillow, matplotlib's own
DejaVu Sans font), tens of milliseconds. The grid covers exactly the axes' data limits, so
the result matches what ``imshow`` would draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from radarlib.products.colors import style_for

__all__ = ["Frame", "colorize", "frame", "save_rgba"]


def colorize(values: npt.NDArray[np.floating], field: str) -> npt.NDArray[np.uint8]:
    """RGBA uint8 of ``values`` in ``field``'s colour scale; NaN and masked -> transparent."""
    cmap, norm = style_for(field, values)
    data = np.ma.masked_invalid(np.ma.filled(np.ma.asarray(values, dtype=np.float64), np.nan))
    rgba = np.asarray(cmap(norm(data), bytes=True), dtype=np.uint8)
    rgba[np.ma.getmaskarray(data)] = 0
    return rgba


def save_rgba(rgba: npt.NDArray[np.uint8], path: Path) -> None:
    """Write an RGBA array as a PNG (Pillow)."""
    from PIL import Image

    Image.fromarray(rgba, mode="RGBA").save(path, format="PNG", compress_level=6)


@dataclass(frozen=True, eq=False)
class Frame:
    """A titled image's reusable parts: background, ring overlay, axes box, title anchor."""

    background: npt.NDArray[np.uint8]  # (H, W, 4)
    overlay: npt.NDArray[np.uint8]  # (H, W, 4), rings and their labels
    box: tuple[int, int, int, int]  # top, left, bottom, right (pixel rows/cols, exclusive)
    title_xy: tuple[float, float]  # centre-bottom of the title, pixels from the top-left
    font_px: int

    def compose(self, grid_rgba: npt.NDArray[np.uint8], title: str) -> npt.NDArray[np.uint8]:
        """The image: data (row 0 = north) into the axes box, rings on top, the title."""
        out = self.background.copy()
        top, left, bottom, right = self.box
        n_rows, n_cols = grid_rgba.shape[:2]
        rows = ((np.arange(bottom - top) + 0.5) * n_rows / (bottom - top)).astype(np.intp)
        cols = ((np.arange(right - left) + 0.5) * n_cols / (right - left)).astype(np.intp)
        patch = grid_rgba[rows[:, None], cols[None, :]]
        region = out[top:bottom, left:right]
        shown = patch[..., 3] > 0
        region[shown] = patch[shown]
        alpha = self.overlay[..., 3:4].astype(np.float32) / 255.0
        blended = self.overlay[..., :3] * alpha + out[..., :3] * (1.0 - alpha)
        out[..., :3] = blended.astype(np.uint8)
        return _draw_title(out, title, self.title_xy, self.font_px)


def _draw_title(
    rgba: npt.NDArray[np.uint8], title: str, xy: tuple[float, float], size: int
) -> npt.NDArray[np.uint8]:
    from PIL import Image, ImageDraw

    image = Image.fromarray(rgba, mode="RGBA")
    draw = ImageDraw.Draw(image)
    draw.multiline_text(xy, title, fill=(0, 0, 0, 255), font=_font(size), anchor="md",
                        align="center", spacing=2)  # fmt: skip
    return np.asarray(image, dtype=np.uint8).copy()


@lru_cache(maxsize=4)
def _font(size: int) -> Any:
    from matplotlib import font_manager
    from PIL import ImageFont

    return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)


@lru_cache(maxsize=16)
def frame(
    field: str,
    label: str,
    limit_km: float,
    ring_km: float,
    size_px: tuple[int, int] = (800, 700),
) -> Frame:
    """The frame of a titled image of ``field`` covering +-``limit_km`` (drawn once, cached)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle

    dpi = 100
    fig = Figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_xlim(-limit_km, limit_km)
    ax.set_ylim(-limit_km, limit_km)
    ax.set_aspect("equal")
    ax.set_xlabel("east of radar (km)")
    ax.set_ylabel("north of radar (km)")
    title = ax.set_title("title\nline", color=(0, 0, 0, 0))  # reserves the space, invisible
    cmap, norm = style_for(field)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.85)
    bar.set_label(label)
    rings: list[Any] = []
    for radius in np.arange(ring_km, limit_km + 1e-9, ring_km):
        rings.append(ax.add_patch(Circle((0, 0), radius, fill=False, color="0.35", lw=0.6)))
        rings.append(ax.annotate(f"{radius:g} km", (0, radius), fontsize=7, color="0.3",
                                 ha="center"))  # fmt: skip
    for artist in rings:
        artist.set_visible(False)
    canvas.draw()
    background = np.asarray(canvas.buffer_rgba(), dtype=np.uint8).copy()
    height = background.shape[0]
    bbox = ax.get_window_extent()
    box = (
        round(height - bbox.y1),
        round(bbox.x0),
        round(height - bbox.y0),
        round(bbox.x1),
    )
    text_box = title.get_window_extent()
    title_xy = ((text_box.x0 + text_box.x1) / 2, height - text_box.y0)
    font_px = round(float(title.get_fontsize()) * dpi / 72)
    # the overlay: only the rings, on a transparent canvas
    for artist in fig.get_children():
        if artist is not ax and artist is not fig.patch:
            artist.set_visible(False)
    for artist in ax.get_children():
        if artist not in rings and artist is not ax.patch:
            artist.set_visible(False)
    for artist in rings:
        artist.set_visible(True)
    fig.patch.set_alpha(0.0)
    ax.patch.set_alpha(0.0)
    canvas.draw()
    overlay = np.asarray(canvas.buffer_rgba(), dtype=np.uint8).copy()
    return Frame(background, overlay, box, title_xy, font_px)
