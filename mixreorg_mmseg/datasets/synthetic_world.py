"""The synthetic image-caption world: shapes with captions and masks.

Each image shows one or several objects drawn from a vocabulary (a shape,
a colour and a texture each) on a varied background; objects differ in
size, position and rotation and may occlude each other. Every image comes
with a caption in natural sentences naming its objects in varying order and
wording, and with a semantic label map (class = shape name, background 0;
the top-most object owns a pixel). The world is written in two forms:

* webdataset shards of image + caption + objects (``key.jpg``, ``key.txt``,
  ``key.json``, as img2dataset writes them) for text-supervised training;
* a segmentation set in MMSeg's layout, read by
  :class:`~mixreorg_mmseg.datasets.FolderSegDataset`, for zero-shot
  evaluation on two splits: ``unseen`` (object combinations never shown in
  training) and ``seen`` (combinations from the training distribution).

**Combinations.** The combination of an image is the set of distinct shape
names visible in it. A seeded set of shape *pairs* is held out: no training
(or ``seen``) image shows both shapes of a held-out pair, and every
``unseen`` image shows at least one held-out pair. ``seen`` and ``unseen``
images are drawn alike (2 or more objects, at least 2 distinct shapes,
built around one pair: seen or held out), so the two splits differ only in
whether the pair was ever captioned together in training.

**Visibility.** An object is kept only if at least ``min_visible`` of its
own area and at least ``min_pixels`` pixels stay visible in the label map
(after the objects drawn over it); a scene that cannot be placed so is
redrawn. Captions therefore never name an object absent from the label map.

Layout under ``root``::

    world.json                  arguments, vocabulary, held-out pairs, files
    classes.txt                 background, then the shape names
    shards/00000.tar ...        training pairs (``write_shards``)
    images/{seen,unseen}/NNNNN.jpg
    annotations/{seen,unseen}/NNNNN.png
    captions/{seen,unseen}.jsonl    name, caption and objects of each image
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import os.path as osp
import re
import zlib
from collections.abc import Callable, Iterator, Sequence

import cv2
import numpy as np
from PIL import Image

from .caption_text import join_phrases, plural, with_article
from .shard_io import write_shards


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
#: Words for a background's tone in captions.
TONE_WORDS = {'dark': ('dark', 'dark grey'), 'light': ('light', 'pale')}

#: Sentences around the list of objects. Fields: ``{objects}`` (the list),
#: ``{there}`` ('there is' / 'there are'), ``{background}`` (tone word),
#: ``{count}`` ('one shape', 'three shapes').
LIST_TEMPLATES = (
    '{objects}.',
    'a photo of {objects}.',
    'a picture of {objects}.',
    'an image showing {objects}.',
    'a drawing of {objects}.',
    'this image contains {objects}.',
    '{there} {objects}.',
    '{objects} on a {background} background.',
    'a photo of {objects} on a {background} background.',
    '{there} {objects} on a {background} background.',
    '{count}: {objects}.',
)
#: Sentences for exactly two object phrases (``{0}``, ``{1}``), drawn
#: alongside :data:`LIST_TEMPLATES` then.
PAIR_TEMPLATES = (
    '{there} {0} next to {1}.',
    '{0} beside {1}.',
    '{0} together with {1}.',
    'a {background} background with {0} and {1}.',
)
NUMBER_WORDS = (
    'no',
    'one',
    'two',
    'three',
    'four',
    'five',
    'six',
    'seven',
    'eight',
    'nine',
    'ten',
)
SPLITS = ('train', 'seen', 'unseen')


def shapes_named(caption: str, shapes: Sequence[str]) -> set[str]:
    """The shape names (singular or plural) that ``caption`` mentions."""
    words = set(re.findall(r'[a-z]+', caption.lower()))
    return {s for s in shapes if s in words or plural(s) in words}


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


def _luminance(rgb: np.ndarray) -> float:
    return float(rgb @ np.array([0.299, 0.587, 0.114]))


def _texture_fill(
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


def _background(
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


def _check_vocabulary(kind: str, names, known, default) -> tuple[str, ...]:
    """``names`` (or ``default``) as a tuple of distinct keys of ``known``;
    a ValueError naming ``kind`` otherwise."""
    names = tuple(default if names is None else names)
    unknown = [n for n in names if n not in known]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(
            f'{kind} must be distinct names from {sorted(known)}, got '
            f'{list(names)}'
        )
    return names


class SyntheticWorld:
    """The vocabulary and drawing rules of the world, with its held-out
    pairs; :meth:`samples` yields the images of one split.

    Args:
        image_size: Image side in pixels (>= 16).
        objects: ``(min, max)`` objects per image.
        shapes: Shape names (keys of :data:`SHAPES`); the classes are
            ``('background', *shapes)``. Defaults to :data:`DEFAULT_SHAPES`.
        colours: Colour names (keys of :data:`COLOURS`). Defaults to
            :data:`DEFAULT_COLOURS`.
        textures: Subset of :data:`TEXTURES`. Defaults to all.
        backgrounds: Subset of :data:`BACKGROUNDS`. Defaults to all.
        radius_range: Object circumradius as fractions of ``image_size``.
        min_visible: Fraction of its own area an object keeps visible.
        min_pixels: Pixels an object keeps visible, at least.
        heldout_pairs: Shape pairs held out of training. Defaults to a
            seeded choice of ``num_heldout`` pairs.
        num_heldout: Number of pairs to hold out when ``heldout_pairs`` is
            None. Defaults to a quarter of all pairs (at least 1).
        colour_prob: Chance that a caption names the colours (it always
            does when one shape comes in two colours).
        texture_prob: Chance that a caption names non-solid textures.
        colour_by_shape: Chance that an object takes its shape's own
            colour (shape ``i`` -> ``colours[i % len(colours)]``) instead
            of a random one: 0 keeps colour and class independent.
        background_prob: Chance that a caption names the background
            ('... on a dark background'); None: as often as the sentence
            drawn happens to (4 of the 11 list sentences do).
        seed: Seed of the held-out choice and of every split's streams.
    """

    def __init__(
        self,
        image_size: int = 64,
        objects: tuple[int, int] = (1, 3),
        shapes: Sequence[str] | None = None,
        colours: Sequence[str] | None = None,
        textures: Sequence[str] | None = None,
        backgrounds: Sequence[str] | None = None,
        radius_range: tuple[float, float] = (0.2, 0.35),
        min_visible: float = 0.5,
        min_pixels: int = 12,
        heldout_pairs: Sequence[Sequence[str]] | None = None,
        num_heldout: int | None = None,
        colour_prob: float = 0.0,
        texture_prob: float = 0.0,
        background_prob: float | None = None,
        colour_by_shape: float = 1.0,
        seed: int = 0,
    ) -> None:
        if image_size < 16:
            raise ValueError(f'image_size must be >= 16, got {image_size}')
        lo, hi = (int(v) for v in objects)
        if not 1 <= lo <= hi:
            raise ValueError(
                f'objects must be (min, max), 1 <= min <= max, '
                f'got {tuple(objects)}'
            )
        if not 0 < radius_range[0] <= radius_range[1] <= 0.5:
            raise ValueError(
                f'radius_range must satisfy 0 < low <= high <= 0.5, got '
                f'{tuple(radius_range)}'
            )
        self.image_size = int(image_size)
        self.objects = (lo, hi)
        self.shapes = _check_vocabulary(
            'shapes', shapes, SHAPES, DEFAULT_SHAPES
        )
        self.colours = _check_vocabulary(
            'colours', colours, COLOURS, DEFAULT_COLOURS
        )
        self.textures = _check_vocabulary(
            'textures', textures, TEXTURES, TEXTURES
        )
        self.backgrounds = _check_vocabulary(
            'backgrounds', backgrounds, BACKGROUNDS, BACKGROUNDS
        )
        self.radius_range = tuple(float(v) for v in radius_range)
        self.min_visible = float(min_visible)
        self.min_pixels = int(min_pixels)
        self.colour_prob = float(colour_prob)
        self.texture_prob = float(texture_prob)
        if background_prob is not None and not 0 <= background_prob <= 1:
            raise ValueError(
                f'background_prob must be in [0, 1] or None, got '
                f'{background_prob}'
            )
        self.background_prob = background_prob
        if not 0 <= colour_by_shape <= 1:
            raise ValueError(
                f'colour_by_shape must be in [0, 1], got {colour_by_shape}'
            )
        self.colour_by_shape = float(colour_by_shape)
        self.seed = int(seed)
        self.classes = ('background',) + self.shapes
        self.heldout_pairs = self._heldout(heldout_pairs, num_heldout)
        held = set(self.heldout_pairs)
        self.seen_pairs = tuple(
            p for p in itertools.combinations(self.shapes, 2) if p not in held
        )

    def _stream(self, name: str, index: int = 0) -> np.random.Generator:
        key = zlib.crc32(name.encode('utf-8'))
        return np.random.default_rng([self.seed, key, index])

    def _pair(self, a: str, b: str) -> tuple[str, str]:
        """A pair in vocabulary order, the form of :attr:`heldout_pairs`."""
        order = self.shapes.index
        return (a, b) if order(a) < order(b) else (b, a)

    def _heldout(self, pairs, num) -> tuple[tuple[str, str], ...]:
        if pairs is not None:
            out = []
            for pair in pairs:
                if (
                    len(pair) != 2
                    or pair[0] == pair[1]
                    or any(s not in self.shapes for s in pair)
                ):
                    raise ValueError(
                        f'held-out pair {pair} must be two distinct names of '
                        f'{self.shapes}'
                    )
                out.append(self._pair(*pair))
            return tuple(
                sorted(
                    set(out),
                    key=lambda p: (
                        self.shapes.index(p[0]),
                        self.shapes.index(p[1]),
                    ),
                )
            )
        all_pairs = list(itertools.combinations(self.shapes, 2))
        if not all_pairs:
            return ()
        num = max(1, round(len(all_pairs) / 4)) if num is None else num
        if not 0 <= num < len(all_pairs):
            raise ValueError(
                f'num_heldout must be in 0..{len(all_pairs) - 1} for '
                f'{len(self.shapes)} shapes, got {num}'
            )
        rng = self._stream('heldout')
        for _ in range(1000):
            chosen = sorted(rng.choice(len(all_pairs), num, replace=False))
            pairs = tuple(all_pairs[i] for i in chosen)
            # every shape keeps a partner it is seen with in training
            partners = {s: 0 for s in self.shapes}
            for a, b in set(all_pairs) - set(pairs):
                partners[a] += 1
                partners[b] += 1
            if min(partners.values()) > 0:
                return pairs
        raise ValueError(
            f'cannot hold out {num} pairs of {self.shapes} and '
            'keep a seen partner for every shape'
        )

    def draw_shapes(self, split: str, rng: np.random.Generator) -> list[str]:
        """The shape of every object of one image of ``split``, in drawing
        order (later ones on top).

        ``train``: ``min..max`` objects, never two shapes of a held-out pair.
        ``seen`` / ``unseen``: ``max(2, min)..max`` objects around a seen /
        held-out pair; ``seen`` adds no held-out pair, ``unseen`` any shape.
        """
        lo, hi = self.objects
        if split == 'train':
            names = []
            count = int(rng.integers(lo, hi + 1))
        elif split in ('seen', 'unseen'):
            pairs = self.seen_pairs if split == 'seen' else self.heldout_pairs
            if hi < 2 or not pairs:
                raise ValueError(
                    f'the {split} split needs images of 2 or more shapes '
                    f'and {split} pairs: objects={self.objects}, '
                    f'shapes={self.shapes}, held out: {self.heldout_pairs}'
                )
            names = list(pairs[int(rng.integers(len(pairs)))])
            count = int(rng.integers(max(2, lo), hi + 1))
        else:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        held = set(self.heldout_pairs)
        while len(names) < count:
            allowed = [
                s
                for s in self.shapes
                if split == 'unseen'
                or not any(t != s and self._pair(s, t) in held for t in names)
            ]
            names.append(allowed[int(rng.integers(len(allowed)))])
        return [names[i] for i in rng.permutation(len(names))]

    def _place(self, shapes, rng) -> tuple[list[dict], np.ndarray] | None:
        """Place ``shapes`` in order, each keeping the others visible;
        returns the objects and their ``(H, W)`` owner map (object index
        + 1, 0 = background), or None after too many tries."""
        size = self.image_size
        owner = np.zeros((size, size), dtype=np.int16)
        objects, areas = [], []
        for k, shape in enumerate(shapes):
            for _ in range(50):
                radius = rng.uniform(*self.radius_range) * size
                center = rng.uniform(radius, size - radius, size=2)
                rotation = rng.uniform(0, 2 * np.pi)
                mask = shape_mask(shape, size, center, radius, rotation)
                area = int(mask.sum())
                trial = np.where(mask, k + 1, owner)
                visible = np.bincount(trial.ravel(), minlength=k + 2)[1:]
                need = np.maximum(
                    self.min_visible * np.array(areas + [area]),
                    self.min_pixels,
                )
                if (visible >= need).all():
                    owner = trial
                    areas.append(area)
                    objects.append(
                        dict(
                            shape=shape,
                            center=[round(float(v), 2) for v in center],
                            radius=round(float(radius), 2),
                            rotation=round(float(np.degrees(rotation)), 1),
                            area=area,
                        )
                    )
                    break
            else:
                return None
        return objects, owner

    def render(
        self, shapes: Sequence[str], rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, list[dict], dict]:
        """Draw one image of objects of the given ``shapes``.

        Returns:
            tuple: ``image`` (H, W, 3) uint8 RGB; ``label`` (H, W) uint8
            indexing :attr:`classes`; the ``objects`` (dicts of shape,
            colour, texture, center, radius, rotation in degrees, area and
            visible area in pixels, in drawing order); the ``background``
            (dict of kind and tone).

        Raises:
            RuntimeError: if the objects cannot be placed visibly (too many
                or too large for the image).
        """
        for _ in range(100):
            placed = self._place(shapes, rng)
            if placed is not None:
                break
        else:
            raise RuntimeError(
                f'cannot place {len(shapes)} objects with radius_range '
                f'{self.radius_range} in {self.image_size} px keeping '
                f'{self.min_visible:.0%} of each visible; use fewer or '
                'smaller objects'
            )
        objects, owner = placed
        size = self.image_size
        kind = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        image, tone = _background(kind, size, rng)
        label = np.zeros((size, size), dtype=np.uint8)
        for k, obj in enumerate(objects):
            colour = self.colours[int(rng.integers(len(self.colours)))]
            if self.colour_by_shape and rng.random() < self.colour_by_shape:
                # the shape's own colour: evidence of the class in every
                # patch of the object, as texture is in photographs
                index = self.shapes.index(obj['shape'])
                colour = self.colours[index % len(self.colours)]
            texture = self.textures[int(rng.integers(len(self.textures)))]
            rgb = np.array(COLOURS[colour]) + rng.integers(-20, 21, size=3)
            rgb = np.clip(rgb, 0, 255)
            visible = owner == k + 1
            fill = _texture_fill(texture, rgb, size, rng)
            image[visible] = fill[visible]
            label[visible] = self.classes.index(obj['shape'])
            obj.update(
                colour=colour, texture=texture, visible=int(visible.sum())
            )
        return image, label, objects, dict(kind=kind, tone=tone)

    def caption(
        self,
        objects: Sequence[dict],
        background: dict,
        rng: np.random.Generator,
    ) -> str:
        """A sentence naming every object (and no other shape).

        Objects alike in what the caption says are counted together
        ('two red discs'); the colours are named with ``colour_prob`` and
        always when one shape comes in two colours; the order of the
        phrases and the template are drawn from ``rng``.
        """
        colours_of = {}
        for obj in objects:
            colours_of.setdefault(obj['shape'], set()).add(obj['colour'])
        say_colour = rng.random() < self.colour_prob or any(
            len(c) > 1 for c in colours_of.values()
        )
        say_texture = rng.random() < self.texture_prob
        groups: dict[tuple, int] = {}
        for obj in objects:
            texture = obj['texture'] if say_texture else 'solid'
            key = (
                texture if texture != 'solid' else None,
                obj['colour'] if say_colour else None,
                obj['shape'],
            )
            groups[key] = groups.get(key, 0) + 1
        phrases = []
        for (texture, colour, shape), n in groups.items():
            words = ' '.join(w for w in (texture, colour) if w is not None)
            noun = shape if n == 1 else plural(shape)
            words = f'{words} {noun}' if words else noun
            if n == 1:
                phrases.append(with_article(words))
            else:
                number = NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
                phrases.append(f'{number} {words}')
        order = rng.permutation(len(phrases))
        counts = list(groups.values())
        phrases = [phrases[i] for i in order]
        first_count = counts[order[0]]
        total = len(objects)
        number = NUMBER_WORDS[total] if total < len(NUMBER_WORDS) else total
        fields = dict(
            there='there is' if first_count == 1 else 'there are',
            background=str(rng.choice(TONE_WORDS[background['tone']])),
            count=f'{number} shape' + ('s' if total > 1 else ''),
        )
        templates = LIST_TEMPLATES
        if len(phrases) == 2:
            templates = LIST_TEMPLATES + PAIR_TEMPLATES
        if self.background_prob is not None:
            # only sentences that name the background, or only those that
            # do not
            names = rng.random() < self.background_prob
            templates = tuple(
                t for t in templates if ('{background}' in t) == names
            )
        template = templates[int(rng.integers(len(templates)))]
        if template in PAIR_TEMPLATES:
            text = template.format(*phrases, **fields)
        else:
            text = template.format(objects=join_phrases(phrases), **fields)
        if rng.random() < 0.5:
            text = text[0].upper() + text[1:]
        return text

    def samples(self, split: str, num: int) -> Iterator[dict]:
        """Yield ``num`` samples of ``split`` (``'train'``, ``'seen'`` or
        ``'unseen'``), deterministically: dicts of ``image`` (H, W, 3)
        uint8, ``label`` (H, W) uint8, ``caption``, ``objects`` and
        ``background``. Each split has its own streams; captions draw
        from a separate one, so rewording them leaves the images alone."""
        if split not in SPLITS:
            raise ValueError(f'split must be one of {SPLITS}, got {split!r}')
        image_rng = self._stream(split, 0)
        caption_rng = self._stream(split, 1)
        for _ in range(num):
            shapes = self.draw_shapes(split, image_rng)
            image, label, objects, background = self.render(shapes, image_rng)
            yield dict(
                image=image,
                label=label,
                caption=self.caption(objects, background, caption_rng),
                objects=objects,
                background=background,
            )

    def config(self) -> dict:
        """The arguments that rebuild this world (JSON-serialisable)."""
        return dict(
            image_size=self.image_size,
            objects=list(self.objects),
            shapes=list(self.shapes),
            colours=list(self.colours),
            textures=list(self.textures),
            backgrounds=list(self.backgrounds),
            radius_range=list(self.radius_range),
            min_visible=self.min_visible,
            min_pixels=self.min_pixels,
            heldout_pairs=[list(p) for p in self.heldout_pairs],
            colour_prob=self.colour_prob,
            texture_prob=self.texture_prob,
            background_prob=self.background_prob,
            colour_by_shape=self.colour_by_shape,
            seed=self.seed,
        )


def _jpeg_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    # JPEG as web image-text sets ship it, so loaders see the real format
    Image.fromarray(image).save(buffer, format='JPEG', quality=95)
    return buffer.getvalue()


def _brace_pattern(paths: Sequence[str]) -> str | None:
    """``'dir/{00000..00003}.tar'`` for consecutive numbered shards."""
    if not paths:
        return None
    folder = osp.dirname(paths[0])
    names = [osp.basename(p) for p in paths]
    match = [re.fullmatch(r'(.*?)(\d+)(\.tar)', n) for n in names]
    if not all(match) or len({(m[1], len(m[2])) for m in match}) != 1:
        return None
    numbers = [int(m[2]) for m in match]
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        return None
    head, width = match[0][1], len(match[0][2])
    if len(paths) == 1:
        return paths[0]
    span = f'{{{numbers[0]:0{width}d}..{numbers[-1]:0{width}d}}}'
    return osp.join(folder, f'{head}{span}.tar')


def _sample_json(key: str, sample: dict, size: int) -> dict:
    return dict(
        key=key,
        caption=sample['caption'],
        width=size,
        height=size,
        shapes=sorted({o['shape'] for o in sample['objects']}),
        objects=sample['objects'],
        background=sample['background'],
    )


def write_synthetic_world(
    root: str,
    num_train: int = 10000,
    num_val: int = 200,
    image_size: int = 64,
    objects: tuple[int, int] = (1, 3),
    seed: int = 0,
    shapes: Sequence[str] | None = None,
    colours: Sequence[str] | None = None,
    samples_per_shard: int = 1000,
    progress: Callable[[str, int, int], None] | None = None,
    **world_kwargs,
) -> dict:
    """Write the world under ``root``; the same arguments write the same
    bytes.

    Args:
        root: Output folder (layout in this module's docstring).
        num_train: Image-caption pairs in the training shards.
        num_val: Images in each of the ``seen`` and ``unseen`` splits.
        image_size: Image side in pixels.
        objects: ``(min, max)`` objects per image.
        seed: Seed of everything drawn.
        shapes: Shape vocabulary (the classes after ``background``).
        colours: Colour vocabulary.
        samples_per_shard: Samples per tar shard.
        progress: Called as ``progress(split, done, total)`` after every
            image.
        **world_kwargs: Further :class:`SyntheticWorld` arguments
            (``textures``, ``backgrounds``, ``radius_range``,
            ``min_visible``, ``min_pixels``, ``heldout_pairs``,
            ``num_heldout``, ``colour_prob``, ``texture_prob``).

    Returns:
        dict: ``root``, ``classes_file``, ``world_file``, ``shards`` (list
        of paths), ``shard_pattern`` (brace pattern of the shards), the
        ``splits`` (``{split: dict(img_dir, ann_dir, captions)}``),
        ``classes`` and ``heldout_pairs``.
    """
    if num_train < 1 or num_val < 0:
        raise ValueError(
            f'need num_train >= 1 and num_val >= 0, got {num_train}, {num_val}'
        )
    world = SyntheticWorld(
        image_size=image_size,
        objects=objects,
        shapes=shapes,
        colours=colours,
        seed=seed,
        **world_kwargs,
    )
    os.makedirs(root, exist_ok=True)
    classes_file = osp.join(root, 'classes.txt')
    with open(classes_file, 'w', encoding='utf-8') as f:
        f.write('\n'.join(world.classes) + '\n')

    def train_samples():
        for i, sample in enumerate(world.samples('train', num_train)):
            key = f'{i:09d}'
            yield dict(
                key=key,
                jpg=_jpeg_bytes(sample['image']),
                txt=sample['caption'],
                json=_sample_json(key, sample, image_size),
            )
            if progress is not None:
                progress('train', i + 1, num_train)

    shards = list(
        write_shards(
            train_samples(),
            osp.join(root, 'shards'),
            samples_per_shard=samples_per_shard,
        )
    )
    splits = {}
    for split in ('seen', 'unseen') if num_val else ():
        img_dir = osp.join(root, 'images', split)
        ann_dir = osp.join(root, 'annotations', split)
        captions = osp.join(root, 'captions', f'{split}.jsonl')
        for folder in (img_dir, ann_dir, osp.dirname(captions)):
            os.makedirs(folder, exist_ok=True)
        with open(captions, 'w', encoding='utf-8') as f:
            for i, sample in enumerate(world.samples(split, num_val)):
                name = f'{i:05d}'
                with open(osp.join(img_dir, name + '.jpg'), 'wb') as img:
                    img.write(_jpeg_bytes(sample['image']))
                Image.fromarray(sample['label']).save(
                    osp.join(ann_dir, name + '.png')
                )
                record = _sample_json(name, sample, image_size)
                f.write(json.dumps(record, sort_keys=True) + '\n')
                if progress is not None:
                    progress(split, i + 1, num_val)
        splits[split] = dict(
            img_dir=img_dir, ann_dir=ann_dir, captions=captions
        )
    world_file = osp.join(root, 'world.json')
    info = dict(
        world=world.config(),
        classes=list(world.classes),
        num_train=num_train,
        num_val=num_val,
        samples_per_shard=samples_per_shard,
        shards=[osp.relpath(p, root) for p in shards],
        splits=sorted(splits),
    )
    with open(world_file, 'w', encoding='utf-8') as f:
        json.dump(info, f, indent=2, sort_keys=True)
        f.write('\n')
    return dict(
        root=root,
        classes_file=classes_file,
        world_file=world_file,
        shards=shards,
        shard_pattern=_brace_pattern(shards),
        splits=splits,
        classes=world.classes,
        heldout_pairs=world.heldout_pairs,
    )
