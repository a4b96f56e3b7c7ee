"""Quarter-turned test views: the turn is recorded, undone exactly, and
merged with the resize-and-flip views."""

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import TestTimeAug as ViewsOf
from mmengine.structures import PixelData
from mmseg.models import SegTTAModel
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.structures import SegDataSample
from torch import nn

from mixreorg_mmseg.datasets.transforms import Rotate90
from mixreorg_mmseg.models.segmentors import RotationSegTTAModel

META_KEYS = (
    'img_path',
    'ori_shape',
    'img_shape',
    'flip',
    'flip_direction',
    'rot90',
)


def test_rotate90_turns_the_image_and_its_shapes():
    img = np.arange(2 * 5 * 3, dtype=np.uint8).reshape(2, 5, 3)
    out = Rotate90(k=1)(dict(img=img, img_shape=(2, 5), ori_shape=(4, 10)))
    np.testing.assert_array_equal(out['img'], np.rot90(img, 1, axes=(0, 1)))
    assert out['img'].shape == (5, 2, 3)
    assert out['img_shape'] == (5, 2)
    # the map is resized to the turned original before it is turned back
    assert out['ori_shape'] == (10, 4)
    assert out['rot90'] == 1
    half = Rotate90(k=6)(dict(img=img, img_shape=(2, 5), ori_shape=(4, 10)))
    np.testing.assert_array_equal(half['img'], img[::-1, ::-1])
    assert half['ori_shape'] == (4, 10) and half['rot90'] == 2


def test_rotate90_rejects_loaded_annotations_and_bad_turns():
    img = np.zeros((2, 3, 3), np.uint8)
    with pytest.raises(ValueError, match='before LoadAnnotations'):
        Rotate90(k=1)(
            dict(img=img, img_path='a.png', gt_seg_map=np.zeros((2, 3)))
        )
    with pytest.raises(TypeError, match='integer'):
        Rotate90(k=1.0)
    with pytest.raises(KeyError, match='img'):
        Rotate90(k=1)(dict(img_path='a.png'))


class _Identity(nn.Module):
    """A segmentor whose class map of a view is the view's pixels."""

    out_channels = 3
    align_corners = False

    def test_step(self, data):
        raise NotImplementedError('the tests call postprocess directly')

    def postprocess(self, img, sample):
        logits = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)
        stub = SimpleNamespace(align_corners=False, out_channels=3)
        out = BaseSegmentor.postprocess_result(stub, logits[None], [sample])
        return out[0]


def test_every_view_comes_back_in_the_image_frame(tmp_path):
    # a non-square image at its own size: flips and turns move pixels
    # exactly, so every view must come back equal to the image itself
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (6, 10, 3), dtype=np.uint8)
    path = str(tmp_path / 'img.png')
    cv2.imwrite(path, img)
    views = ViewsOf(
        transforms=[
            [dict(type='LoadImageFromFile')],
            [dict(type='Rotate90', k=k) for k in range(4)],
            [
                dict(type='RandomFlip', prob=0.0, direction='horizontal'),
                dict(type='RandomFlip', prob=1.0, direction='horizontal'),
                dict(type='RandomFlip', prob=1.0, direction='vertical'),
            ],
            [dict(type='PackSegInputs', meta_keys=META_KEYS)],
        ]
    )(dict(img_path=path))
    assert len(views['inputs']) == 12
    model = _Identity()
    samples = [
        model.postprocess(inputs.permute(1, 2, 0).numpy(), sample)
        for inputs, sample in zip(
            views['inputs'], views['data_samples'], strict=True
        )
    ]
    turned = [s for s in samples if s.metainfo['rot90'] % 2]
    assert turned and all(s.seg_logits.shape == (10, 6) for s in turned)
    merged = RotationSegTTAModel(module=model).merge_preds([samples])[0]
    expected = torch.from_numpy(img.astype(np.float32)).permute(2, 0, 1)
    for sample in samples:
        torch.testing.assert_close(sample.seg_logits.data, expected)
        assert tuple(sample.metainfo['ori_shape']) == (6, 10)
    torch.testing.assert_close(
        merged.pred_sem_seg.data[0], expected.softmax(0).argmax(0)
    )


def test_views_without_a_turn_merge_as_mmseg_does():
    model = _Identity()

    logits = [torch.randn(3, 4, 5) for _ in range(2)]

    def views():
        out = []
        for data in logits:
            sample = SegDataSample(metainfo=dict(img_path='x.png'))
            sample.seg_logits = PixelData(data=data.clone())
            out.append(sample)
        return [out]

    ours = RotationSegTTAModel(module=model).merge_preds(views())[0]
    theirs = SegTTAModel(module=model).merge_preds(views())[0]
    torch.testing.assert_close(
        ours.pred_sem_seg.data, theirs.pred_sem_seg.data
    )


def test_synthetic_world_views_carry_their_turn(tmp_path):
    # a view packed without 'rot90' would be averaged in its turned frame
    from mmengine.config import Config

    from .conftest import REPO_ROOT

    cfg = Config.fromfile(
        f'{REPO_ROOT}/configs/synthetic_world/'
        'mixreorg_tiny_synthetic-world-64x64.py'
    )
    assert cfg.tta_model.type == 'RotationSegTTAModel'
    path = str(tmp_path / 'img.png')
    cv2.imwrite(path, np.zeros((64, 64, 3), np.uint8))
    load, views = cfg.tta_pipeline
    assert load.type == 'LoadImageFromFile'
    packed = ViewsOf(transforms=[[load], *views.transforms])(
        dict(
            img_path=path,
            seg_map_path=path,
            seg_fields=[],
            reduce_zero_label=False,
        )
    )
    turns = sorted(s.metainfo['rot90'] for s in packed['data_samples'])
    assert turns == [0] * 6 + [2] * 6
    sides = {tuple(s.metainfo['img_shape']) for s in packed['data_samples']}
    assert sides == {(48, 48), (64, 64), (80, 80)}
