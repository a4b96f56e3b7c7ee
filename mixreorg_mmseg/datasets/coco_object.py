"""COCO-Object: COCO's 80 thing classes plus background, as label maps.

The zero-shot benchmark of GroupViT (Xu et al., CVPR 2022, Sec. 4.1) and
MixReorg (Cai et al., ICCV 2023, Sec. 4): all instance masks of a category
in an image are merged into one semantic label map; pixels covered by no
instance are background (0), category ``c`` (in COCO's category order) is
``1 + c``. MMSeg has no such data set; this module provides the dataset
class and the writer that builds the label maps from COCO's instance
annotations (``instances_<split>.json``) with pycocotools.

Layout (written by ``tools/dataset_converters/coco_object.py``)::

    data/coco_object/
      images/val2017/<id>.jpg                         (link to COCO's)
      annotations/val2017/<id>_instanceTrainIds.png   uint8, 0..80
"""

from __future__ import annotations

import json
import os
import os.path as osp

import numpy as np
from mmseg.datasets import BaseSegDataset, COCOStuffDataset
from mmseg.registry import DATASETS
from PIL import Image

from .image_files import NameBadFilesMixin

#: COCO's 80 thing classes in category-id order (the first 80 classes of
#: MMSeg's COCO-Stuff), after the background.
COCO_OBJECT_CLASSES = ('background',) + tuple(
    COCOStuffDataset.METAINFO['classes'][:80]
)

#: File name suffix of the label maps (GroupViT's converter names them the
#: same way, so label maps made by either are read alike).
COCO_OBJECT_SEG_SUFFIX = '_instanceTrainIds.png'


@DATASETS.register_module()
class COCOObjectDataset(NameBadFilesMixin, BaseSegDataset):
    """COCO-Object: 81 classes, background (0) and COCO's 80 things.

    Args:
        img_suffix: image file suffix. Defaults to ``'.jpg'``.
        seg_map_suffix: label map suffix. Defaults to
            ``'_instanceTrainIds.png'``.
        **kwargs: as for MMSeg's ``BaseSegDataset`` (``data_root``,
            ``data_prefix``, ``pipeline``...). Background is a class, so
            ``reduce_zero_label`` stays False.

    An image or label map that is empty or does not decode fails naming
    the file (:class:`~.image_files.NameBadFilesMixin`).
    """

    METAINFO = dict(
        classes=COCO_OBJECT_CLASSES,
        palette=[[0, 0, 0]] + list(COCOStuffDataset.METAINFO['palette'][:80]),
    )

    def __init__(
        self,
        img_suffix: str = '.jpg',
        seg_map_suffix: str = COCO_OBJECT_SEG_SUFFIX,
        **kwargs,
    ) -> None:
        super().__init__(
            img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, **kwargs
        )


def category_labels(categories: list[dict], source: str) -> dict[int, int]:
    """COCO category id -> COCO-Object label (1..80), matched by name.

    Raises:
        ValueError: a category name that COCO-Object does not know, or not
            all 80 classes present (naming ``source``).
    """
    labels = {}
    for category in categories:
        name = category['name']
        if name not in COCO_OBJECT_CLASSES[1:]:
            raise ValueError(
                f'{source}: category {name!r} (id {category["id"]}) is not '
                'one of the 80 COCO thing classes'
            )
        labels[int(category['id'])] = COCO_OBJECT_CLASSES.index(name)
    if len(set(labels.values())) != len(COCO_OBJECT_CLASSES) - 1:
        raise ValueError(
            f'{source}: has {len(labels)} categories, COCO-Object needs the '
            f'{len(COCO_OBJECT_CLASSES) - 1} thing classes'
        )
    return labels


def instance_mask(segmentation, height: int, width: int) -> np.ndarray:
    """Boolean ``(height, width)`` mask of one COCO annotation's
    ``segmentation`` (polygons, uncompressed or compressed RLE)."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):  # polygons
        rles = mask_utils.frPyObjects(segmentation, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(segmentation.get('counts'), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle).astype(bool)


def coco_object_label_map(
    annotations: list[dict],
    height: int,
    width: int,
    labels: dict[int, int],
) -> np.ndarray:
    """One image's COCO-Object label map, ``(height, width)`` uint8.

    Every instance (crowd regions included) paints its category's label;
    larger instances are painted first, so a small object lying on a larger
    one stays visible. Uncovered pixels are background (0).
    """
    label_map = np.zeros((height, width), dtype=np.uint8)
    for ann in sorted(annotations, key=lambda a: -float(a.get('area', 0))):
        mask = instance_mask(ann['segmentation'], height, width)
        label_map[mask] = labels[int(ann['category_id'])]
    return label_map


def _write_one(task: tuple) -> None:
    annotations, height, width, labels, out_path = task
    Image.fromarray(
        coco_object_label_map(annotations, height, width, labels)
    ).save(out_path)


def write_coco_object(
    ann_file: str, out_dir: str, split: str, nproc: int = 1
) -> int:
    """Write the label maps of every image of ``ann_file``.

    Args:
        ann_file: COCO instance annotations (``instances_val2017.json``).
        out_dir: COCO-Object root; maps go to
            ``annotations/<split>/<stem>_instanceTrainIds.png``.
        split: sub-folder name (``val2017``).
        nproc: worker processes (MMEngine's progress bar either way).

    Returns:
        Number of label maps written.
    """
    from mmengine.utils import track_parallel_progress, track_progress

    if not osp.isfile(ann_file):
        raise FileNotFoundError(f'COCO annotation file not found: {ann_file}')
    with open(ann_file, encoding='utf-8') as f:
        coco = json.load(f)
    for key in ('images', 'annotations', 'categories'):
        if key not in coco:
            raise KeyError(f'{ann_file}: no "{key}" (not COCO instances)')
    labels = category_labels(coco['categories'], ann_file)
    per_image = {int(img['id']): [] for img in coco['images']}
    for ann in coco['annotations']:
        image_id = int(ann['image_id'])
        if image_id not in per_image:
            raise ValueError(
                f'{ann_file}: annotation {ann.get("id")} refers to image '
                f'{image_id}, which is not listed'
            )
        per_image[image_id].append(ann)
    seg_dir = osp.join(out_dir, 'annotations', split)
    os.makedirs(seg_dir, exist_ok=True)
    tasks = [
        (
            per_image[int(img['id'])],
            int(img['height']),
            int(img['width']),
            labels,
            osp.join(
                seg_dir,
                osp.splitext(img['file_name'])[0] + COCO_OBJECT_SEG_SUFFIX,
            ),
        )
        for img in coco['images']
    ]
    if nproc > 1:
        track_parallel_progress(_write_one, tasks, nproc)
    else:
        track_progress(_write_one, tasks)
    return len(tasks)
