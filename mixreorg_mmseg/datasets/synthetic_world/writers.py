"""Write the synthetic world to disk: training shards and a zero-shot set.

Layout under ``root``::

    world.json                  arguments, vocabulary, held-out pairs, files
    classes.txt                 background, then the shape names
    shards/00000.tar ...        training pairs (``write_shards``)
    images/{seen,unseen}/NNNNN.jpg
    annotations/{seen,unseen}/NNNNN.png
    captions/{seen,unseen}.jsonl    name, caption and objects of each image

The shards hold ``key.jpg``, ``key.txt`` and ``key.json`` as img2dataset
writes them; the ``images`` / ``annotations`` folders are MMSeg's layout,
read by :class:`~mixreorg_mmseg.datasets.FolderSegDataset` with
``classes.txt``.
"""

from __future__ import annotations

import json
import os
import os.path as osp
import re
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from ..shard_io import encode_jpeg, write_shards
from .scenes import SyntheticWorld


def _jpeg_bytes(image: np.ndarray) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 RGB image, as web image-text sets
    ship it so that loaders see the real format. The world draws RGB;
    :func:`~mixreorg_mmseg.datasets.shard_io.encode_jpeg` takes BGR."""
    return encode_jpeg(np.ascontiguousarray(image[..., ::-1]))


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
            ``num_heldout``, ``colour_prob``, ``texture_prob``,
            ``background_prob``, ``colour_by_shape``,
            ``caption_templates``).

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
