"""Image-caption data: the CSV/TSV dataset, skipping of unusable samples,
the training pipeline through MMEngine's dataloader, the toy writer."""

import csv
import hashlib
import logging
import os
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from PIL import Image

from mixreorg_mmseg.datasets import (
    TOY_CLASSES,
    ImageCaptionDataset,
    LoadImageOrSkip,
    clean_caption,
    generate_toy_image_captions,
    write_toy_image_captions,
)
from tests.conftest import REPO_ROOT

BASE_CONFIG = osp.join(
    REPO_ROOT, 'configs/_base_/datasets/toy_image_captions.py'
)


class _ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings_logged():
    """Warnings sent to MMEngine's current logger during the test."""
    logger = MMLogger.get_current_instance()
    handler = _ListHandler()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def _write_images(img_dir, names, size=8):
    os.makedirs(img_dir, exist_ok=True)
    for i, name in enumerate(names):
        pixels = np.full((size, size, 3), 20 * i, dtype=np.uint8)
        Image.fromarray(pixels).save(osp.join(img_dir, name))


def _write_ann(path, rows, header=('image', 'caption')):
    dialect = 'excel-tab' if str(path).endswith('.tsv') else 'excel'
    with open(path, 'w', encoding='utf-8', newline='') as f:
        writer = csv.writer(f, dialect=dialect)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _dataset(tmp_path, ann_name, **kwargs):
    return ImageCaptionDataset(
        data_root=str(tmp_path),
        ann_file=ann_name,
        data_prefix=dict(img_path='images'),
        **kwargs,
    )


@pytest.mark.parametrize('ext', ['tsv', 'csv'])
def test_tsv_and_csv_list_pairs_with_cleaned_captions(tmp_path, ext):
    _write_images(tmp_path / 'images', ['a.jpg', 'b.jpg'])
    _write_ann(
        tmp_path / f'ann.{ext}',
        [
            # mojibake, an HTML entity, a tab and a newline inside quotes
            ['a.jpg', '  caf\u00c3\u00a9 &amp;\tbar,\n a  disc '],
            ['b.jpg', 'a square'],
        ],
    )
    dataset = _dataset(tmp_path, f'ann.{ext}')
    assert len(dataset) == 2
    assert dataset.skipped == {'empty_caption': 0, 'missing_image': 0}
    info = dataset.get_data_info(0)
    assert info['img_path'] == osp.join(str(tmp_path), 'images', 'a.jpg')
    assert info['caption'] == 'caf\u00e9 & bar, a disc'
    assert info['sample_idx'] == 0
    assert dataset.get_data_info(1)['caption'] == 'a square'


def test_clean_caption_repairs_text_and_collapses_whitespace():
    # mojibake of curly quotes: ftfy repairs it (and straightens quotes)
    assert clean_caption('\u00e2\u0080\u009chi\u00e2\u0080\u009d \n') == '"hi"'
    assert clean_caption('fish &amp;amp; chips') == 'fish & chips'
    assert clean_caption('a \t\n b') == 'a b'
    assert clean_caption(' \n\t ') == ''


def test_column_names_are_configurable(tmp_path):
    _write_images(tmp_path / 'images', ['a.jpg'])
    _write_ann(
        tmp_path / 'ann.csv',
        [['x', 'a.jpg', 'a disc']],
        header=('id', 'file', 'text'),
    )
    dataset = _dataset(
        tmp_path, 'ann.csv', image_key='file', caption_key='text'
    )
    assert dataset.get_data_info(0)['caption'] == 'a disc'


def test_empty_captions_and_missing_images_are_skipped_and_named(
    tmp_path, warnings_logged
):
    names = [f'{i}.jpg' for i in range(10)]
    _write_images(tmp_path / 'images', names[:6] + names[7:])  # no 6.jpg
    rows = [[name, f'caption {i}'] for i, name in enumerate(names)]
    rows[1][1] = ' \t '  # line 3 (header is line 1)
    ann_file = _write_ann(tmp_path / 'ann.tsv', rows)
    dataset = _dataset(tmp_path, 'ann.tsv', max_skip_ratio=0.2)
    assert dataset.skipped == {'empty_caption': 1, 'missing_image': 1}
    assert len(dataset) == 8
    captions = [dataset.get_data_info(i)['caption'] for i in range(8)]
    assert 'caption 1' not in captions and 'caption 6' not in captions
    assert [dataset.get_data_info(i)['sample_idx'] for i in range(8)] == (
        list(range(8))
    )
    (message,) = [m for m in warnings_logged if 'skipped' in m]
    assert ann_file in message
    assert '1 empty caption (line 3)' in message
    assert '1 missing image (line 8)' in message


def test_too_many_skipped_rows_raise_naming_the_file(tmp_path):
    _write_images(tmp_path / 'images', ['a.jpg'])
    rows = [['a.jpg', 'a disc']] * 8 + [['gone.jpg', 'a disc']] * 2
    _write_ann(tmp_path / 'ann.tsv', rows)
    with pytest.raises(ValueError, match=r'ann\.tsv: skipped 2 of 10 rows'):
        _dataset(tmp_path, 'ann.tsv')  # default max_skip_ratio 0.1
    assert len(_dataset(tmp_path, 'ann.tsv', max_skip_ratio=0.2)) == 8


def test_file_without_a_usable_pair_raises(tmp_path):
    _write_ann(tmp_path / 'ann.tsv', [['gone.jpg', 'a disc']])
    with pytest.raises(ValueError, match=r'ann\.tsv: lists no image-caption'):
        _dataset(tmp_path, 'ann.tsv', max_skip_ratio=1.0)
    _write_ann(tmp_path / 'header_only.tsv', [])
    with pytest.raises(ValueError, match=r'header_only\.tsv: lists no'):
        _dataset(tmp_path, 'header_only.tsv')


def test_missing_column_error_names_the_column_and_file(tmp_path):
    _write_ann(tmp_path / 'ann.tsv', [['a.jpg', 'a disc']], ('url', 'text'))
    with pytest.raises(ValueError, match=r'ann\.tsv: no column "image"'):
        _dataset(tmp_path, 'ann.tsv')
    with pytest.raises(ValueError, match=r'ann\.tsv: no column "caption"'):
        _dataset(tmp_path, 'ann.tsv', image_key='url')


def test_malformed_annotation_files_are_named(tmp_path):
    (tmp_path / 'rows.tsv').write_text('image\tcaption\na.jpg\tx\tEXTRA\n')
    with pytest.raises(ValueError, match=r'rows\.tsv:2: expected 2 fields'):
        _dataset(tmp_path, 'rows.tsv')
    (tmp_path / 'empty.csv').write_text('')
    with pytest.raises(ValueError, match=r'empty\.csv: is empty'):
        _dataset(tmp_path, 'empty.csv')
    (tmp_path / 'ann.json').write_text('[]')
    with pytest.raises(ValueError, match=r'ann\.json: .* \.csv or \.tsv'):
        _dataset(tmp_path, 'ann.json')
    with pytest.raises(FileNotFoundError, match=r'absent\.tsv'):
        _dataset(tmp_path, 'absent.tsv')


def _train_loader_cfg(data_root, batch_size):
    cfg = Config.fromfile(BASE_CONFIG).train_dataloader
    cfg.dataset.data_root = data_root
    cfg.batch_size = batch_size
    return cfg


def test_dataloader_batches_carry_captions_to_the_preprocessor(
    toy_captions_root,
):
    from mmseg.models import SegDataPreProcessor
    from mmseg.structures import SegDataSample

    cfg = _train_loader_cfg(toy_captions_root, batch_size=4)
    loader = Runner.build_dataloader(cfg, seed=0)
    dataset = loader.dataset
    captions = {
        dataset.get_data_info(i)['caption'] for i in range(len(dataset))
    }
    batch = next(iter(loader))
    assert len(batch['inputs']) == len(batch['data_samples']) == 4
    for image, sample in zip(
        batch['inputs'], batch['data_samples'], strict=True
    ):
        assert image.dtype == torch.uint8
        assert tuple(image.shape) == (3, 64, 64)  # cropped and resized
        assert isinstance(sample, SegDataSample)
        assert sample.metainfo['caption'] in captions
        assert 'flip' in sample.metainfo
        assert 'gt_sem_seg' not in sample
    preprocessor = SegDataPreProcessor(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        size=(64, 64),
    )
    out = preprocessor(batch, training=True)
    assert tuple(out['inputs'].shape) == (4, 3, 64, 64)
    assert out['inputs'].dtype == torch.float32
    for sample in out['data_samples']:
        assert tuple(sample.metainfo['img_shape']) == (64, 64)
    assert [s.metainfo['caption'] for s in out['data_samples']] == [
        s.metainfo['caption'] for s in batch['data_samples']
    ]


def test_corrupt_images_are_skipped_counted_and_named(
    tmp_path, warnings_logged
):
    write_toy_image_captions(str(tmp_path), 6, size=32, seed=0)
    garbage = osp.join(str(tmp_path), 'images', 'train', '00001.jpg')
    empty = osp.join(str(tmp_path), 'images', 'train', '00004.jpg')
    with open(garbage, 'wb') as f:
        f.write(b'\xff\xd8 this is not a JPEG' * 10)
    open(empty, 'wb').close()
    cfg = _train_loader_cfg(str(tmp_path), batch_size=6)
    loader = Runner.build_dataloader(cfg, seed=0)
    loader_transform = loader.dataset.pipeline.transforms[0]
    assert isinstance(loader_transform, LoadImageOrSkip)

    batches = iter(loader)
    for _ in range(3):  # the infinite sampler revisits every index
        batch = next(batches)
        paths = [s.metainfo['img_path'] for s in batch['data_samples']]
        assert len(paths) == 6  # bad indices were replaced, not dropped
        assert garbage not in paths and empty not in paths

    assert sorted(loader_transform.skipped_files) == [garbage, empty]
    assert loader_transform.num_skipped == 2
    skips = [m for m in warnings_logged if 'unreadable image' in m]
    assert len(skips) == 2  # once per file, however often it is drawn
    assert any(garbage in m for m in skips)
    assert any(empty in m for m in skips)


def test_load_image_or_skip_refuses_ignore_empty():
    with pytest.raises(TypeError, match='ignore_empty'):
        LoadImageOrSkip(ignore_empty=True)


def _digest(root):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            with open(osp.join(dirpath, name), 'rb') as f:
                h.update(name.encode() + f.read())
    return h.hexdigest()


def test_toy_writer_is_deterministic_under_its_seed(tmp_path):
    for name, seed, split in (
        ('a', 3, 'train'),
        ('b', 3, 'train'),
        ('c', 4, 'train'),
        ('d', 3, 'val'),
    ):
        ann_file = write_toy_image_captions(
            str(tmp_path / name), 5, size=24, seed=seed, split=split
        )
        assert ann_file == str(tmp_path / name / f'{split}_captions.tsv')
    assert _digest(tmp_path / 'a') == _digest(tmp_path / 'b')
    assert _digest(tmp_path / 'a') != _digest(tmp_path / 'c')
    assert osp.isfile(tmp_path / 'd' / 'images' / 'val' / '00004.jpg')


def test_toy_captions_name_exactly_the_visible_shapes(tmp_path):
    shapes = TOY_CLASSES[1:]
    samples = list(generate_toy_image_captions(40, size=32, seed=5))
    for _, label, caption in samples:
        visible = {TOY_CLASSES[v] for v in np.unique(label) if v != 0}
        words = set(re.findall(r'[a-z]+', caption))
        assert visible and words & set(shapes) == visible, caption
    # varied sentences, and the same shapes named in more than one order
    assert len({c.split(' a ')[0] for _, _, c in samples}) > 3
    orders = {
        tuple(w for w in re.findall(r'[a-z]+', c) if w in shapes)
        for _, _, c in samples
    }
    assert len(orders) > len({frozenset(o) for o in orders})
    # the written file holds the generated captions, in order
    ann_file = write_toy_image_captions(str(tmp_path), 40, size=32, seed=5)
    with open(ann_file, encoding='utf-8', newline='') as f:
        rows = list(csv.reader(f, dialect='excel-tab'))
    assert rows[0] == ['image', 'caption']
    assert [r[1] for r in rows[1:]] == [c for _, _, c in samples]
    assert [r[0] for r in rows[1:]] == [f'{i:05d}.jpg' for i in range(40)]
