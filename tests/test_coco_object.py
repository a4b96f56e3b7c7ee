"""COCO-Object: label maps from COCO instance annotations, and the dataset."""

import json
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mixreorg_mmseg.datasets import (
    COCO_OBJECT_CLASSES,
    COCOObjectDataset,
    write_coco_object,
)

pytest.importorskip('pycocotools')


def uncompressed_rle(mask):
    """COCO's uncompressed RLE of a boolean mask (column-major runs,
    starting with a run of zeros)."""
    flat = mask.flatten(order='F').astype(np.uint8)
    counts, value, run = [], 0, 0
    for pixel in flat:
        if pixel == value:
            run += 1
        else:
            counts.append(run)
            value, run = pixel, 1
    counts.append(run)
    return dict(counts=counts, size=list(mask.shape))


def write_coco_instances(root, height=20, width=30):
    """A COCO-style ``instances_val2017.json`` with two images: image 1
    has a person (polygon) and a dog on it (RLE crowd region), image 2
    nothing. Category ids have gaps, like COCO's."""
    categories = [
        dict(id=3 * i + 1, name=name, supercategory='x')
        for i, name in enumerate(COCO_OBJECT_CLASSES[1:])
    ]
    ids = {c['name']: c['id'] for c in categories}
    dog = np.zeros((height, width), dtype=bool)
    dog[4:7, 5:8] = True
    coco = dict(
        images=[
            dict(id=1, file_name='000001.jpg', height=height, width=width),
            dict(id=2, file_name='000002.jpg', height=height, width=width),
        ],
        annotations=[
            dict(
                id=10,
                image_id=1,
                category_id=ids['dog'],
                segmentation=uncompressed_rle(dog),
                area=9.0,
                iscrowd=1,
                bbox=[5, 4, 3, 3],
            ),
            dict(
                id=11,
                image_id=1,
                category_id=ids['person'],
                # a rectangle: x 2..20, y 1..15
                segmentation=[[2, 1, 20, 1, 20, 15, 2, 15]],
                area=252.0,
                iscrowd=0,
                bbox=[2, 1, 18, 14],
            ),
        ],
        categories=categories,
    )
    path = osp.join(root, 'instances_val2017.json')
    with open(path, 'w') as f:
        json.dump(coco, f)
    return path, dog


def test_instances_become_one_label_map_with_small_objects_on_top(tmp_path):
    ann_file, dog = write_coco_instances(str(tmp_path))
    out = str(tmp_path / 'coco_object')
    assert write_coco_object(ann_file, out, 'val2017') == 2
    seg_dir = osp.join(out, 'annotations', 'val2017')
    first = np.array(
        Image.open(osp.join(seg_dir, '000001_instanceTrainIds.png'))
    )
    second = np.array(
        Image.open(osp.join(seg_dir, '000002_instanceTrainIds.png'))
    )
    person = COCO_OBJECT_CLASSES.index('person')
    dog_label = COCO_OBJECT_CLASSES.index('dog')
    assert (person, dog_label) == (1, 17)
    assert first.shape == (20, 30) and first.dtype == np.uint8
    # the dog (painted after the larger person) is exactly its RLE mask
    assert np.array_equal(first == dog_label, dog)
    # the person's interior, minus the dog; background outside
    assert (first[3:13, 4:18][~dog[3:13, 4:18]] == person).all()
    assert (first[16:] == 0).all() and (first[:, 22:] == 0).all()
    assert set(np.unique(first)) == {0, person, dog_label}
    assert (second == 0).all()


def test_dataset_reads_the_converted_layout(tmp_path):
    ann_file, _ = write_coco_instances(str(tmp_path))
    out = tmp_path / 'coco_object'
    write_coco_object(ann_file, str(out), 'val2017')
    (out / 'images' / 'val2017').mkdir(parents=True)
    for name in ('000001', '000002'):
        Image.new('RGB', (30, 20)).save(
            out / 'images' / 'val2017' / f'{name}.jpg'
        )
    dataset = COCOObjectDataset(
        data_root=str(out),
        data_prefix=dict(
            img_path='images/val2017', seg_map_path='annotations/val2017'
        ),
    )
    assert len(dataset) == 2
    assert len(dataset.metainfo['classes']) == 81
    assert dataset.metainfo['classes'][0] == 'background'
    assert len(dataset.metainfo['palette']) == 81
    assert dataset[0]['seg_map_path'].endswith('000001_instanceTrainIds.png')


def test_unknown_category_names_the_annotation_file(tmp_path):
    ann_file, _ = write_coco_instances(str(tmp_path))
    with open(ann_file) as f:
        coco = json.load(f)
    coco['categories'][5]['name'] = 'unicorn'
    with open(ann_file, 'w') as f:
        json.dump(coco, f)
    with pytest.raises(ValueError, match='instances_val2017.json.*unicorn'):
        write_coco_object(ann_file, str(tmp_path / 'out'), 'val2017')


def test_missing_annotation_file_is_named(tmp_path):
    missing = str(tmp_path / 'instances_val2017.json')
    with pytest.raises(FileNotFoundError, match='instances_val2017'):
        write_coco_object(missing, str(tmp_path / 'out'), 'val2017')
