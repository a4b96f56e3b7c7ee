"""The shapes of the synthetic world: outlines and their rasterisation.

Every shape is a polygon outline, centred with circumradius about 1 (y
points down), with optional holes cut out of it; :func:`shape_mask` scales,
turns and places one and fills it with OpenCV at sub-pixel precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np


def _ellipse(rx: float, ry: float, dx: float = 0.0, n: int = 48):
    """(n, 2) vertices of an axis-aligned ellipse centred at ``(dx, 0)``."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([dx + rx * np.cos(t), ry * np.sin(t)], axis=1)


def _regular(n: int, phase: float) -> np.ndarray:
    """(n, 2) vertices of a regular n-gon of circumradius 1."""
    t = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    t = -np.pi / 2 + np.pi * np.arange(2 * points) / points
    radius = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)


def _cross(arm: float = 0.3, length: float = 0.95) -> np.ndarray:
    a, b = arm, length
    quarter = [(a, -b), (a, -a), (b, -a)]
    # the same three corners turned by 0, 90, 180 and 270 degrees
    return np.array(
        [
            (x * c - y * s, x * s + y * c)
            for c, s in ((1, 0), (0, 1), (-1, 0), (0, -1))
            for x, y in quarter
        ],
        dtype=np.float64,
    )


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t))
    y = y + np.cos(4 * t)
    pts = np.stack([x, y], axis=1)
    pts -= (pts.max(0) + pts.min(0)) / 2
    return pts / np.linalg.norm(pts, axis=1).max()


#: Outline of every shape, centred, circumradius about 1 (y points down):
#: ``(outline, holes)``; holes are cut out of the filled outline.
SHAPES: dict[str, tuple[np.ndarray, tuple[np.ndarray, ...]]] = {
    'disc': (_ellipse(1, 1), ()),
    'square': (_regular(4, np.pi / 4), ()),
    'triangle': (_regular(3, -np.pi / 2), ()),
    'star': (_star(), ()),
    'cross': (_cross(), ()),
    'ring': (_ellipse(1, 1), (_ellipse(0.55, 0.55),)),
    # a rhombus, not a square on its tip: rotation would merge the two
    'diamond': (np.array([(0, -1), (0.6, 0), (0, 1), (-0.6, 0)]), ()),
    'crescent': (_ellipse(1, 1), (_ellipse(0.8, 0.8, dx=0.45),)),
    'ellipse': (_ellipse(1, 0.55), ()),
    'hexagon': (_regular(6, 0), ()),
    'heart': (_heart(), ()),
}
#: The shapes drawn by default: eight distinct silhouettes.
DEFAULT_SHAPES = (
    'disc',
    'square',
    'triangle',
    'star',
    'cross',
    'ring',
    'diamond',
    'crescent',
)


def shape_mask(
    shape: str,
    size: int,
    center: Sequence[float],
    radius: float,
    rotation: float,
) -> np.ndarray:
    """Rasterise one shape: a boolean ``(size, size)`` mask.

    Args:
        shape: A key of :data:`SHAPES`.
        size: Image side in pixels.
        center: ``(x, y)`` in pixels (pixel ``i`` spans ``[i, i + 1)``).
        radius: Circumradius in pixels.
        rotation: Angle in radians, clockwise on screen.
    """
    outline, holes = SHAPES[shape]
    c, s = math.cos(rotation), math.sin(rotation)
    turn = np.array([[c, s], [-s, c]]) * radius
    canvas = np.zeros((size, size), dtype=np.uint8)
    for value, poly in [(1, outline)] + [(0, h) for h in holes]:
        # cv2 puts pixel centres on integers; 4 fractional bits
        pts = (poly @ turn + np.asarray(center) - 0.5) * 16
        pts = np.round(pts).astype(np.int32)
        cv2.fillPoly(canvas, [pts], value, lineType=cv2.LINE_8, shift=4)
    return canvas.astype(bool)
