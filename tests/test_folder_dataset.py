"""The toy folder writer and the class-list dataset that reads it."""

import hashlib
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from mixreorg_mmseg.datasets import (
    TOY_CLASSES,
    FolderSegDataset,
    read_class_names,
    write_toy_segmentation,
)


def _digest(root):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            with open(osp.join(dirpath, name), 'rb') as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


def test_same_seed_writes_same_files_and_other_seed_differs(tmp_path):
    for name, seed in (('a', 3), ('b', 3), ('c', 4)):
        write_toy_segmentation(
            str(tmp_path / name), {'val': 3}, size=24, seed=seed
        )
    assert _digest(tmp_path / 'a') == _digest(tmp_path / 'b')
    assert _digest(tmp_path / 'a') != _digest(tmp_path / 'c')


def test_label_maps_match_the_drawn_shapes(tmp_path):
    write_toy_segmentation(str(tmp_path), {'train': 6}, size=32, seed=1)
    for name in sorted(os.listdir(tmp_path / 'annotations' / 'train')):
        label = np.array(Image.open(tmp_path / 'annotations' / 'train' / name))
        image = np.array(
            Image.open(
                tmp_path / 'images' / 'train' / name.replace('.png', '.jpg')
            )
        )
        assert label.shape == image.shape[:2] == (32, 32)
        assert set(np.unique(label)) <= set(range(len(TOY_CLASSES)))
        assert (label > 0).any()
        # objects are drawn bright (>= 128), background dark (< 128):
        # the label map must say where the bright pixels are
        bright = image.max(axis=2) >= 128
        agreement = (bright == (label > 0)).mean()
        assert agreement > 0.9


def test_dataset_reads_classes_from_the_folder(toy_root):
    dataset = FolderSegDataset(
        data_root=toy_root,
        data_prefix=dict(
            img_path='images/val', seg_map_path='annotations/val'
        ),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations'),
            dict(type='PackSegInputs'),
        ],
    )
    assert dataset.metainfo['classes'] == TOY_CLASSES
    assert len(dataset) == 4
    sample = dataset[0]
    assert tuple(sample['inputs'].shape) == (3, 32, 32)
    seg = sample['data_samples'].gt_sem_seg.data
    assert int(seg.max()) < len(TOY_CLASSES)


def test_class_file_errors_name_the_file_and_line(tmp_path):
    with pytest.raises(FileNotFoundError, match='classes.txt'):
        read_class_names(str(tmp_path / 'classes.txt'))
    bad = tmp_path / 'dup.txt'
    bad.write_text('background\ncat\n# comment\ncat\n')
    with pytest.raises(ValueError, match=r'dup.txt:4: class "cat"'):
        read_class_names(str(bad))
    empty = tmp_path / 'empty.txt'
    empty.write_text('\n# nothing\n')
    with pytest.raises(ValueError, match='empty.txt: lists no class'):
        read_class_names(str(empty))


def test_classes_cannot_be_given_twice(toy_root):
    with pytest.raises(ValueError, match='classes_file'):
        FolderSegDataset(data_root=toy_root, metainfo=dict(classes=('a', 'b')))


def _folder_with_labels(root, values, classes=('background', 'cat')):
    (root / 'images').mkdir(parents=True)
    (root / 'annotations').mkdir()
    (root / 'classes.txt').write_text('\n'.join(classes) + '\n')
    Image.new('RGB', (4, 4)).save(root / 'images' / 'a.jpg')
    label = np.array(values, dtype=np.uint8).reshape(2, 2).repeat(2, 0)
    Image.fromarray(label.repeat(2, 1)).save(root / 'annotations' / 'a.png')
    return FolderSegDataset(
        data_root=str(root),
        data_prefix=dict(img_path='images', seg_map_path='annotations'),
        pipeline=[dict(type='LoadAnnotations'), dict(type='PackSegInputs')],
    )


def test_label_values_outside_the_class_list_name_the_file(tmp_path):
    dataset = _folder_with_labels(tmp_path / 'bad', [0, 1, 2, 7])
    with pytest.raises(
        ValueError, match=r'a\.png: label values \[2, 7\].*classes\.txt'
    ):
        dataset[0]


def test_ignored_label_values_are_accepted(tmp_path):
    dataset = _folder_with_labels(tmp_path / 'ok', [0, 1, 255, 1])
    seg = dataset[0]['data_samples'].gt_sem_seg.data
    assert set(seg.unique().tolist()) == {0, 1, 255}
