"""How the synthetic world's objects and backgrounds look: the named
colours, the textures that fill an object and the background kinds.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Named object colours (RGB), jittered per object.
COLOURS: dict[str, tuple[int, int, int]] = {
    'red': (220, 40, 40),
    'green': (40, 175, 60),
    'blue': (45, 95, 230),
    'yellow': (240, 215, 35),
    'orange': (245, 135, 20),
    'purple': (145, 60, 205),
    'pink': (245, 125, 195),
    'cyan': (35, 195, 215),
}
#: The colours drawn by default: one per default shape.
DEFAULT_COLOURS = (
    'red',
    'green',
    'blue',
    'yellow',
    'orange',
    'purple',
    'pink',
    'cyan',
)
#: Object fills; captions may name the non-solid ones as adjectives.
TEXTURES = ('solid', 'striped', 'dotted')
#: Background kinds: one tone with slight noise, a linear gradient, or
#: smooth low-frequency noise; each dark or light.
BACKGROUNDS = ('plain', 'gradient', 'noise')


def _luminance(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def texture_fill(
    texture: str, rgb: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
    """A ``(size, size, 3)`` uint8 fill of colour ``rgb`` in ``texture``;
    the pattern's second shade keeps the hue (darker or lighter)."""
    fill = np.empty((size, size, 3), dtype=np.uint8)
    fill[:] = rgb
    if texture == 'solid':
        return fill
    if _luminance(rgb) > 110:
        shade = rgb * 0.45
    else:
        shade = rgb * 0.5 + 128
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    period = max(3.0, size * rng.uniform(0.08, 0.13))
    if texture == 'striped':
        angle = rng.uniform(0, np.pi)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) / period
        pattern = (phase + rng.uniform()) % 1 < 0.5
    elif texture == 'dotted':
        ox, oy = rng.uniform(0, period, size=2)
        dx = (xx + ox) % period - period / 2
        dy = (yy + oy) % period - period / 2
        pattern = dx**2 + dy**2 <= (0.3 * period) ** 2
    else:
        raise ValueError(f'unknown texture: {texture}')
    fill[pattern] = np.clip(shade, 0, 255).astype(np.uint8)
    return fill


def draw_background(
    kind: str, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """A ``(size, size, 3)`` uint8 background of ``kind`` and its tone
    (``'dark'`` or ``'light'``): greyish, so object colours stand out."""
    tone = 'dark' if rng.random() < 0.5 else 'light'
    level = rng.uniform(15, 85) if tone == 'dark' else rng.uniform(165, 235)
    base = level + rng.normal(0, 10, size=3)
    image = np.empty((size, size, 3), dtype=np.float64)
    image[:] = base
    if kind == 'gradient':
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1) - 0.5
        ramp = xx * np.cos(angle) + yy * np.sin(angle)
        image += ramp[..., None] * rng.uniform(40, 90)
    elif kind == 'noise':
        cells = int(rng.integers(3, 9))
        # mostly brightness, a little hue: the background stays greyish
        coarse = rng.normal(0, 1, size=(cells, cells, 1))
        coarse = coarse + 0.3 * rng.normal(0, 1, size=(cells, cells, 3))
        coarse = coarse.astype(np.float32)
        smooth = cv2.resize(coarse, (size, size), cv2.INTER_CUBIC)
        image += smooth * rng.uniform(12, 25)
    elif kind != 'plain':
        raise ValueError(f'unknown background: {kind}')
    image += rng.normal(0, 3, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8), tone
