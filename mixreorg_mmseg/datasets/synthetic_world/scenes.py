"""The synthetic world's scenes: which shapes an image shows, where they
lie and how they are painted.

:class:`SyntheticWorld` holds the vocabulary (shapes, colours, textures,
backgrounds) and the seeded held-out shape pairs, and draws the images of a
split: the shapes of every image (never a held-out pair in training, one in
every ``unseen`` image), their sizes, positions and rotations (every object
keeping enough of itself visible), their colours and fills, and the label
map. Each split and each purpose (images, captions, held-out choice) draws
from its own seeded stream.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterator, Sequence

import numpy as np

from .appearance import (
    BACKGROUNDS,
    COLOURS,
    DEFAULT_COLOURS,
    TEXTURES,
    draw_background,
    texture_fill,
)
from .captions import CAPTION_TEMPLATES, caption_scene
from .shapes import DEFAULT_SHAPES, SHAPES, shape_mask

#: The splits a world draws: training, then the two zero-shot splits.
SPLITS = ('train', 'seen', 'unseen')


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
            does when one shape comes in two colours): colour words are in
            the text without telling the shapes apart.
        texture_prob: Chance that a caption names non-solid textures.
        colour_by_shape: Chance that an object takes its shape's own
            colour (shape ``i`` -> ``colours[i % len(colours)]``) instead
            of a random one. The default 0 keeps colour and class
            independent, so only the outline tells the shape; 1 is the
            easy world, where colour alone names the shape.
        background_prob: Chance that a caption names the background
            ('... on a dark background'); None: as often as the sentence
            drawn happens to (4 of the 11 list sentences do).
        caption_templates: Name of the captions' sentence frames, a key of
            :data:`~.captions.CAPTION_TEMPLATES` (``'full'``, ``'terse'``,
            ``'descriptive'``).
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
        radius_range: tuple[float, float] = (0.125, 1 / 3),
        min_visible: float = 0.5,
        min_pixels: int = 12,
        heldout_pairs: Sequence[Sequence[str]] | None = None,
        num_heldout: int | None = None,
        colour_prob: float = 0.3,
        texture_prob: float = 0.0,
        background_prob: float | None = None,
        colour_by_shape: float = 0.0,
        caption_templates: str = 'full',
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
        if caption_templates not in CAPTION_TEMPLATES:
            raise ValueError(
                f'caption_templates must be one of '
                f'{sorted(CAPTION_TEMPLATES)}, got {caption_templates!r}'
            )
        self.caption_templates = caption_templates
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
        image, tone = draw_background(kind, size, rng)
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
            fill = texture_fill(texture, rgb, size, rng)
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
        """This world's caption of a scene: :func:`caption_scene` with its
        ``colour_prob``, ``texture_prob``, ``background_prob`` and
        ``caption_templates``."""
        return caption_scene(
            objects,
            background,
            rng,
            colour_prob=self.colour_prob,
            texture_prob=self.texture_prob,
            background_prob=self.background_prob,
            templates=self.caption_templates,
        )

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
            caption_templates=self.caption_templates,
            seed=self.seed,
        )
