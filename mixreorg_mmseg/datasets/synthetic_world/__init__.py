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

Modules: :mod:`.shapes` (outlines and their masks), :mod:`.appearance`
(colours, textures, backgrounds), :mod:`.scenes` (:class:`SyntheticWorld`:
held-out pairs, drawing a split's images), :mod:`.captions` (the sentence
of a scene, in one of the named sets of sentence frames) and
:mod:`.writers` (:func:`write_synthetic_world`: shards, segmentation
folders, ``classes.txt``; its module docstring draws the layout on disk).
"""

from .appearance import BACKGROUNDS, COLOURS, DEFAULT_COLOURS, TEXTURES
from .captions import CAPTION_TEMPLATES, caption_scene, shapes_named
from .scenes import SPLITS, SyntheticWorld
from .shapes import DEFAULT_SHAPES, SHAPES, shape_mask
from .writers import write_synthetic_world

__all__ = [
    'BACKGROUNDS',
    'CAPTION_TEMPLATES',
    'COLOURS',
    'DEFAULT_COLOURS',
    'DEFAULT_SHAPES',
    'SHAPES',
    'SPLITS',
    'TEXTURES',
    'SyntheticWorld',
    'caption_scene',
    'shape_mask',
    'shapes_named',
    'write_synthetic_world',
]
