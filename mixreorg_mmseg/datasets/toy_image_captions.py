"""A small, deterministic image-caption set of coloured shapes.

The images are drawn by the toy segmentation generator
(:func:`~mixreorg_mmseg.datasets.toy_segmentation.render_toy_sample`); each
caption names, in a sentence of varied wording and order, exactly the shape
classes visible in the image's label map. Text-supervised training can so
be checked end to end in minutes, and zero-shot segmentation evaluated on
the toy segmentation folder, which draws the same kind of images with the
same :data:`~mixreorg_mmseg.datasets.toy_segmentation.TOY_CLASSES`.

Layout under ``root``, read by
:class:`~mixreorg_mmseg.datasets.ImageCaptionDataset` with
``ann_file='<split>_captions.tsv'`` and
``data_prefix=dict(img_path='images/<split>')``::

    <split>_captions.tsv        header ``image<TAB>caption``
    images/<split>/00000.jpg
"""

from __future__ import annotations

import csv
import os
import os.path as osp
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image

from .caption_text import join_phrases, with_article
from .toy_segmentation import TOY_CLASSES, render_toy_sample

#: Sentences around the list of shapes (``{}``); drawn uniformly.
LIST_TEMPLATES = (
    'a photo of {}.',
    'an image of {}.',
    'a picture showing {}.',
    'there is {}.',
    '{} on a dark background.',
    'a drawing of {}.',
)
#: Sentences for exactly two shapes (``{0}``, ``{1}``), drawn alongside
#: :data:`LIST_TEMPLATES` when two classes are visible.
PAIR_TEMPLATES = (
    'there is {0} next to {1}.',
    '{0} and {1} together.',
    'a photo of {0} beside {1}.',
)


def make_toy_caption(
    label: np.ndarray,
    rng: np.random.Generator,
    class_names: Sequence[str] = TOY_CLASSES,
) -> str:
    """A caption naming every class present in ``label`` except index 0.

    Args:
        label: (H, W) integer label map indexing ``class_names``.
        rng: Chooses the sentence and the order of the names.
        class_names: Class names; index 0 (background) is never named.

    Raises:
        ValueError: if ``label`` shows no foreground class.
    """
    present = [int(v) for v in np.unique(label) if v != 0]
    if not present:
        raise ValueError('label map shows no foreground class to caption')
    phrases = [with_article(class_names[v]) for v in present]
    phrases = [phrases[i] for i in rng.permutation(len(phrases))]
    templates = LIST_TEMPLATES
    if len(phrases) == 2:
        templates = LIST_TEMPLATES + PAIR_TEMPLATES
    template = templates[int(rng.integers(len(templates)))]
    if template in PAIR_TEMPLATES:
        return template.format(*phrases)
    return template.format(join_phrases(phrases))


def generate_toy_image_captions(
    num_images: int, size: int = 64, seed: int = 0, split: str = 'train'
) -> Iterator[tuple[np.ndarray, np.ndarray, str]]:
    """Yield ``(image, label, caption)`` for the toy set, deterministically.

    ``image`` is (H, W, 3) uint8 RGB, ``label`` (H, W) uint8 indexing
    :data:`TOY_CLASSES`. Each ``(seed, split)`` has its own streams; images
    and captions draw from separate ones, so rewording the captions does
    not change the images.
    """
    if size < 16:
        # smaller, a shape may cover no pixel centre: nothing to caption
        raise ValueError(f'size must be >= 16 pixels, got {size}')
    split_key = zlib.crc32(split.encode('utf-8'))
    image_rng = np.random.default_rng([seed, split_key, 0])
    caption_rng = np.random.default_rng([seed, split_key, 1])
    for _ in range(num_images):
        image, label = render_toy_sample(size, image_rng)
        yield image, label, make_toy_caption(label, caption_rng)


def write_toy_image_captions(
    root: str,
    num_images: int,
    size: int = 64,
    seed: int = 0,
    split: str = 'train',
) -> str:
    """Write ``num_images`` pairs of one split; same arguments, same bytes.

    Args:
        root: Output folder; ``images/<split>/NNNNN.jpg`` and
            ``<split>_captions.tsv`` are written inside.
        num_images: Number of image-caption pairs.
        size: Image side in pixels.
        seed: Seed of the generator.
        split: Split name, used in the paths and to seed its own streams.

    Returns:
        str: Path of the written TSV file.
    """
    if num_images < 1:
        raise ValueError(f'num_images must be >= 1, got {num_images}')
    img_dir = osp.join(root, 'images', split)
    os.makedirs(img_dir, exist_ok=True)
    ann_file = osp.join(root, f'{split}_captions.tsv')
    with open(ann_file, 'w', encoding='utf-8', newline='') as f:
        writer = csv.writer(f, dialect='excel-tab', lineterminator='\n')
        writer.writerow(['image', 'caption'])
        samples = generate_toy_image_captions(num_images, size, seed, split)
        for i, (image, _, caption) in enumerate(samples):
            name = f'{i:05d}.jpg'
            # JPEG as web image-caption sets ship it, so the loaders and
            # the decoding errors are the real ones
            Image.fromarray(image).save(osp.join(img_dir, name), quality=95)
            writer.writerow([name, caption])
    return ann_file
