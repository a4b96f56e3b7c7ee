"""A small, deterministic segmentation folder of coloured shapes.

It exists so that the installation can be checked end to end (train,
checkpoint, resume, test with ``IoUMetric``) on any machine in a minute,
without downloading data. It is written in the layout that
:class:`~mixreorg_mmseg.datasets.FolderSegDataset` reads. (The synthetic
image-caption world for text-supervised training is a separate, larger
generator.)
"""

from __future__ import annotations

import os
import os.path as osp

import numpy as np
from PIL import Image

#: Class names of the toy folder; label value = index (0 is background).
TOY_CLASSES = ('background', 'disc', 'square', 'triangle')


def _shape_mask(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean ``(size, size)`` mask of one randomly placed shape."""
    radius = rng.uniform(0.12, 0.25) * size
    cy, cx = rng.uniform(radius, size - radius, size=2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if kind == 'disc':
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    if kind == 'square':
        return (np.abs(yy - cy) <= radius) & (np.abs(xx - cx) <= radius)
    if kind == 'triangle':
        # apex up, base down: inside if below both slanted edges
        top, bottom = cy - radius, cy + radius
        half_width = (yy - top) / (2 * radius) * radius
        return (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half_width)
    raise ValueError(f'unknown shape kind: {kind}')


def render_toy_sample(
    size: int, rng: np.random.Generator, max_objects: int = 3
):
    """Draw one image and its label map.

    Returns:
        tuple: ``image`` (H, W, 3) uint8 RGB and ``label`` (H, W) uint8 with
        values indexing :data:`TOY_CLASSES`; later shapes occlude earlier.
    """
    base = rng.integers(0, 96, size=3)
    noise = rng.integers(0, 32, size=(size, size, 3))
    image = np.clip(base + noise, 0, 255).astype(np.uint8)
    label = np.zeros((size, size), dtype=np.uint8)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        cls_index = int(rng.integers(1, len(TOY_CLASSES)))
        mask = _shape_mask(TOY_CLASSES[cls_index], size, rng)
        image[mask] = rng.integers(128, 256, size=3)
        label[mask] = cls_index
    return image, label


def write_toy_segmentation(
    root: str, splits: dict[str, int] = None, size: int = 64, seed: int = 0
) -> dict[str, int]:
    """Write the toy folder; the same arguments write the same files.

    Args:
        root: Output folder; ``classes.txt``, ``images/<split>/`` and
            ``annotations/<split>/`` are created inside.
        splits: Number of samples per split. Defaults to
            ``{'train': 128, 'val': 32}``.
        size: Image side in pixels.
        seed: Seed of the generator; each split draws from its own stream.

    Returns:
        dict: samples written per split.
    """
    splits = dict(splits or {'train': 128, 'val': 32})
    os.makedirs(root, exist_ok=True)
    with open(osp.join(root, 'classes.txt'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(TOY_CLASSES) + '\n')
    for split_index, (split, count) in enumerate(sorted(splits.items())):
        rng = np.random.default_rng([seed, split_index])
        img_dir = osp.join(root, 'images', split)
        ann_dir = osp.join(root, 'annotations', split)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(ann_dir, exist_ok=True)
        for i in range(count):
            image, label = render_toy_sample(size, rng)
            name = f'{split}_{i:05d}'
            # PNG for images too would be lossless, but JPEG is what the
            # real benchmarks ship, so the loaders see the real format.
            Image.fromarray(image).save(
                osp.join(img_dir, name + '.jpg'), quality=95
            )
            Image.fromarray(label).save(osp.join(ann_dir, name + '.png'))
    return splits
