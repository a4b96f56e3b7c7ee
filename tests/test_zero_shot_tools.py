"""Zero-shot evaluation, demo and group pictures, end to end as a user runs
them: a tiny GroupViT checkpoint, a tiny copy of each benchmark's layout on
disk, the benchmark configs with only the model shrunk."""

import copy
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from mixreorg_mmseg.datasets import TOY_CLASSES
from mixreorg_mmseg.utils.safe_checkpoint import safe_torch_save

from .conftest import REPO_ROOT, run_python, tiny_groupvit_cfg

pytestmark = pytest.mark.slow

TOY_CONFIG = osp.join(
    REPO_ROOT, 'configs/zero_shot/groupvit_tiny_toy-segmentation-64x64.py'
)
TINY_PARTS = ('backbone', 'text_encoder', 'image_projector', 'text_projector')


def save_checkpoint(model_cfg, path):
    """A checkpoint in MMEngine's format of a freshly built model."""
    from mmseg.registry import MODELS

    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(model_cfg))
    safe_torch_save({'meta': {}, 'state_dict': model.state_dict()}, path)
    return path


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """The tiny 32 px GroupViT of the unit tests and its checkpoint."""
    tmp = tmp_path_factory.mktemp('tiny_zero_shot')
    model = tiny_groupvit_cfg(str(tmp), str(tmp)).model
    return model, save_checkpoint(model, str(tmp / 'tiny.pth'))


def shrunk_config(name, tiny_model, path, data_root=None):
    """``configs/zero_shot/<name>`` with the tiny model's encoders, its
    dataset, pipeline, head and sliding window unchanged; written to
    ``path``."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, 'configs/zero_shot', name))
    for part in TINY_PARTS:
        cfg.model[part] = copy.deepcopy(tiny_model[part])
    cfg.model.noun_prompts = copy.deepcopy(tiny_model.noun_prompts)
    cfg.test_dataloader.num_workers = 0
    if data_root is not None:
        cfg.test_dataloader.dataset.data_root = data_root
    cfg.log_level = 'INFO'
    cfg.dump(path)
    return path


def write_pair(img_path, seg_path, labels, rng, size=(24, 32)):
    """A random JPEG and a label map drawing 4 blocks from ``labels``."""
    h, w = size
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    label = np.zeros((h, w), dtype=np.uint8)
    values = rng.choice(labels, size=4)
    label[: h // 2, : w // 2] = values[0]
    label[: h // 2, w // 2 :] = values[1]
    label[h // 2 :, : w // 2] = values[2]
    label[h // 2 :, w // 2 :] = values[3]
    for path in (img_path, seg_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(img_path)
    Image.fromarray(label).save(seg_path)


def write_pascal(root, rng, names, seg_dir, split_dir, values):
    """A PASCAL-layout set: JPEGImages, label maps in ``seg_dir``, and the
    image list ``ImageSets/<split_dir>/val.txt``."""
    for name in names:
        write_pair(
            root / 'JPEGImages' / f'{name}.jpg',
            root / seg_dir / f'{name}.png',
            values,
            rng,
        )
    split = root / 'ImageSets' / split_dir / 'val.txt'
    split.parent.mkdir(parents=True)
    split.write_text('\n'.join(names) + '\n')
    return str(root)


def write_voc(root, rng):
    names = ['2007_000033', '2007_000042']
    values = [0, 3, 15, 255]
    return write_pascal(
        root, rng, names, 'SegmentationClass', 'Segmentation', values
    )


def write_context(root, rng):
    names = ['2008_000002', '2008_000003']
    values = [0, 1, 37, 59]
    return write_pascal(
        root,
        rng,
        names,
        'SegmentationClassContext',
        'SegmentationContext',
        values,
    )


def write_ade(root, rng):
    for name in ['ADE_val_00000001', 'ADE_val_00000002']:
        write_pair(
            root / 'images' / 'validation' / f'{name}.jpg',
            root / 'annotations' / 'validation' / f'{name}.png',
            [0, 1, 13, 150],
            rng,
        )
    return str(root)


def write_coco(root, rng):
    """COCO as downloaded (images + instances json), then the converter."""
    from mixreorg_mmseg.datasets import COCO_OBJECT_CLASSES

    coco_root = root / 'coco'
    (coco_root / 'annotations').mkdir(parents=True)
    images, annotations = [], []
    for i in (1, 2):
        write_pair(
            coco_root / 'val2017' / f'{i:012d}.jpg',
            root / 'unused' / f'{i}.png',
            [0],
            rng,
        )
        images.append(
            dict(id=i, file_name=f'{i:012d}.jpg', height=24, width=32)
        )
        annotations.append(
            dict(
                id=10 + i,
                image_id=i,
                category_id=i,
                segmentation=[[4, 4, 20, 4, 20, 16, 4, 16]],
                area=192.0,
                iscrowd=0,
                bbox=[4, 4, 16, 12],
            )
        )
    categories = [
        dict(id=i + 1, name=name)
        for i, name in enumerate(COCO_OBJECT_CLASSES[1:])
    ]
    with open(coco_root / 'annotations' / 'instances_val2017.json', 'w') as f:
        json.dump(
            dict(
                images=images, annotations=annotations, categories=categories
            ),
            f,
        )
    out = root / 'coco_object'
    proc = run_python(
        [
            'tools/dataset_converters/coco_object.py',
            str(coco_root),
            '--out-dir',
            str(out),
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'wrote 2 label maps' in proc.stdout
    label = np.array(
        Image.open(
            out
            / 'annotations'
            / 'val2017'
            / '000000000002_instanceTrainIds.png'
        )
    )
    assert set(np.unique(label)) == {0, 2}  # bicycle on background
    return str(out)


def _ok(proc):
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return log


def assert_iou_table(log, classes):
    assert 'per class results' in log and 'mIoU' in log, log[-3000:]
    for name in classes:
        assert re.search(rf'\|\s+{re.escape(name)}\s+\|', log), name
    assert re.search(r'Iter\(test\) \[2/2\].*mIoU: \d', log)


@pytest.mark.parametrize(
    'config, write, classes, count',
    [
        (
            'groupvit_vit-s_voc12.py',
            write_voc,
            ['background', 'aeroplane', 'tvmonitor'],
            21,
        ),
        (
            'groupvit_vit-s_pascal-context.py',
            write_context,
            ['background', 'aeroplane', 'wood'],
            60,
        ),
        (
            'groupvit_vit-s_coco-object.py',
            write_coco,
            ['background', 'person', 'toothbrush'],
            81,
        ),
        (
            'groupvit_vit-s_ade20k.py',
            write_ade,
            ['wall', 'clock', 'flag'],
            150,
        ),
    ],
    ids=['voc12', 'pascal-context', 'coco-object', 'ade20k'],
)
def test_benchmark_layouts_are_evaluated_by_tools_test(
    tmp_path, tiny, config, write, classes, count
):
    model, ckpt = tiny
    root = write(tmp_path / 'data', np.random.default_rng(0))
    path = shrunk_config(config, model, str(tmp_path / config), root)
    log = _ok(
        run_python(
            ['tools/test.py', path, ckpt, '--work-dir', str(tmp_path / 'w')]
        )
    )
    assert f'zero-shot head: {count} classes' in log
    assert_iou_table(log, classes)
    # the paper's protocol ran: short side 448, 448 x 448 windows
    assert re.search(r'crop_size=\(\s*448,\s*448', log), 'slide 448'


def test_benchmark_configs_test_with_tta(tmp_path, tiny):
    # tools/test.py --tta swaps in the config's tta_pipeline (six sides of
    # the protocol's scale, each also flipped) and the TTA model
    model, ckpt = tiny
    root = write_voc(tmp_path / 'data', np.random.default_rng(0))
    path = shrunk_config(
        'groupvit_vit-s_voc12.py', model, str(tmp_path / 'voc.py'), root
    )
    work_dir = tmp_path / 'w'
    log = _ok(
        run_python(
            ['tools/test.py', path, ckpt, '--tta', '--work-dir', str(work_dir)]
        )
    )
    assert 'zero-shot head: 21 classes' in log
    assert_iou_table(log, ['background', 'aeroplane', 'tvmonitor'])
    ran = Config.fromfile(str(work_dir / 'voc.py'))
    assert ran.model.type == 'RotationSegTTAModel'
    views = ran.test_dataloader.dataset.pipeline[1]
    assert views.type == 'TestTimeAug'
    sides = [t.scale for t in views.transforms[0]]
    assert sides[2] == (2048, 448) and len(sides) == 6
    assert [t.prob for t in views.transforms[1]] == [0.0, 1.0]


def test_a_folder_is_evaluated_given_only_by_cfg_options(tmp_path, tiny):
    model, ckpt = tiny
    root = tmp_path / 'my_data'
    rng = np.random.default_rng(1)
    for name in ('a', 'b'):
        write_pair(
            root / 'images' / f'{name}.jpg',
            root / 'annotations' / f'{name}.png',
            [0, 1, 2, 255],
            rng,
        )
    (root / 'classes.txt').write_text('background\nzebra\nhot air balloon\n')
    path = shrunk_config(
        'groupvit_vit-s_folder.py', model, str(tmp_path / 'folder.py')
    )
    log = _ok(
        run_python(
            [
                'tools/test.py',
                path,
                ckpt,
                '--work-dir',
                str(tmp_path / 'w'),
                '--cfg-options',
                f'test_dataloader.dataset.data_root={root}',
                'model.decode_head.bg_thresh=0.9',
            ]
        )
    )
    assert (
        'zero-shot head: 3 classes from FolderSegDataset (class 0 is ' in log
    )
    assert_iou_table(log, ['background', 'zebra', 'hot air balloon'])


@pytest.fixture(scope='module')
def toy_ckpt(tmp_path_factory):
    """A checkpoint of the toy zero-shot config's (64 px) model."""
    cfg = Config.fromfile(TOY_CONFIG)
    path = tmp_path_factory.mktemp('toy_ckpt') / 'toy.pth'
    return save_checkpoint(cfg.model, str(path))


def test_the_toy_segmentation_set_is_evaluated(tmp_path, toy_root, toy_ckpt):
    log = _ok(
        run_python(
            [
                'tools/test.py',
                TOY_CONFIG,
                toy_ckpt,
                '--work-dir',
                str(tmp_path / 'w'),
                '--cfg-options',
                f'test_dataloader.dataset.data_root={toy_root}',
            ]
        )
    )
    assert re.search(r'Iter\(test\) \[4/4\].*mIoU: \d', log)
    for name in TOY_CLASSES:
        assert re.search(rf'\|\s+{name}\s+\|', log), name


@pytest.mark.parametrize('tool', ['demo.py', 'visualize_groups.py'])
def test_one_image_tools_write_a_png(tmp_path, toy_root, toy_ckpt, tool):
    image = osp.join(toy_root, 'images', 'val', 'val_00000.jpg')
    out = str(tmp_path / 'out' / 'picture.png')
    proc = run_python(
        [
            f'tools/{tool}',
            image,
            TOY_CONFIG,
            toy_ckpt,
            '--classes',
            'disc, square,triangle',
            '--device',
            'cpu',
            '--out',
            out,
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f'wrote {out}' in proc.stdout
    picture = np.array(Image.open(out))
    # the 32 px image is drawn at 256 px, with a legend (and the groups of
    # both stages) beside it
    panels = 2 if tool == 'demo.py' else 4
    assert picture.shape[0] > 256 and picture.shape[1] > panels * 256
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 50


def test_prepared_image_gives_inference_models_mask(toy_root, toy_ckpt):
    import mmcv

    from mixreorg_mmseg.apis import (
        init_zero_shot_model,
        prepare_image,
        zero_shot_groups,
        zero_shot_predict,
    )

    model = init_zero_shot_model(
        TOY_CONFIG, toy_ckpt, ['disc', 'square', 'triangle']
    )
    pipeline = copy.deepcopy(model.cfg.test_pipeline)
    path = osp.join(toy_root, 'images', 'val', 'val_00000.jpg')
    from_path = prepare_image(model, path)
    from_array = prepare_image(model, mmcv.imread(path))
    assert model.cfg.test_pipeline == pipeline
    assert from_path['inputs'].shape[:2] == (1, 3)
    assert torch.equal(from_path['inputs'], from_array['inputs'])
    assert from_path['data_samples'][0].ori_shape == (32, 32)
    # the mask of the pictures is the one MMSeg's inference_model predicts
    _, mask = zero_shot_groups(model, path)
    expected = zero_shot_predict(model, path).pred_sem_seg.data[0]
    np.testing.assert_array_equal(mask, expected.cpu().numpy())


def test_segment_diagnostics_tool_measures_a_split(
    tmp_path, toy_root, toy_ckpt
):
    out = str(tmp_path / 'diag.json')
    proc = run_python(
        [
            'tools/analysis_tools/segment_diagnostics.py',
            TOY_CONFIG,
            toy_ckpt,
            '--img-dir',
            osp.join(toy_root, 'images', 'val'),
            '--ann-dir',
            osp.join(toy_root, 'annotations', 'val'),
            '--out-json',
            out,
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '| final segments per image |' in proc.stdout
    with open(out, encoding='utf-8') as f:
        result = json.load(f)
    assert result['num_images'] == len(
        [n for n in os.listdir(osp.join(toy_root, 'images', 'val'))]
    )
    # one entry per grouping stage, never more groups than the stage has
    stages = Config.fromfile(TOY_CONFIG).model.backbone.num_output_groups
    assert len(result['groups_used']) == len(stages)
    for used, most in zip(result['groups_used'], stages, strict=True):
        assert 1 <= used <= most
    assert 0 < result['purity'] <= 1 and 0 <= result['image_top1'] <= 1
    # the bound: the best naming of these segments, never below a class
    # map that the segments allow
    assert '| grouping bound, mIoU' in proc.stdout
    assert 0 < result['grouping_bound'] <= 100


def test_segment_diagnostics_measure_the_heads_own_segments(
    toy_root, toy_ckpt, monkeypatch
):
    from mixreorg_mmseg.apis import init_zero_shot_model
    from mixreorg_mmseg.apis.segment_diagnostics import (
        folder_split,
        segment_diagnostics,
    )

    model = init_zero_shot_model(
        TOY_CONFIG, toy_ckpt, ['background', 'disc', 'square', 'triangle']
    )
    head = model.decode_head
    calls = []

    def one_segment(output, size, image=None):
        # the head gets the input image (its refinement needs it)
        calls.append((tuple(size), image.shape))
        return torch.zeros((1, *size), dtype=torch.long)

    monkeypatch.setattr(head, 'pixel_segments', one_segment)
    images, labels = folder_split(
        osp.join(toy_root, 'images', 'val'),
        osp.join(toy_root, 'annotations', 'val'),
    )
    result = segment_diagnostics(model, images[:3], labels[:3])
    assert len(calls) == 3
    assert all(image[-2:] == size for size, image in calls)
    # one segment an image: the head's segments, not the assignments'
    assert result['segments_per_image'] == 1
    expected = [
        np.bincount(label[label != 255].ravel()).max() / (label != 255).sum()
        for label in labels[:3]
    ]
    assert result['purity'] == pytest.approx(np.mean(expected))


def test_background_calibration_chooses_on_validation_data(
    tmp_path, toy_root, toy_ckpt
):
    # the toy config has no validation split: its test folder serves here
    cfg = Config.fromfile(TOY_CONFIG)
    cfg.test_dataloader.dataset.data_root = toy_root
    cfg.val_dataloader = copy.deepcopy(cfg.test_dataloader)
    cfg.val_evaluator = copy.deepcopy(cfg.test_evaluator)
    cfg.val_cfg = dict(type='ValLoop')
    config = str(tmp_path / 'toy_with_val.py')
    cfg.dump(config)
    out_json = str(tmp_path / 'calibration.json')
    out_config = str(tmp_path / 'calibrated' / 'toy_calibrated.py')
    os.makedirs(osp.dirname(out_config))
    log = _ok(
        run_python(
            [
                'tools/analysis_tools/calibrate_background.py',
                config,
                toy_ckpt,
                '--thresholds',
                '0.0',
                '1.0',
                '--work-dir',
                str(tmp_path / 'w'),
                '--out-json',
                out_json,
                '--out-config',
                out_config,
            ]
        )
    )
    with open(out_json, encoding='utf-8') as f:
        calibration = json.load(f)
    scores = {r['bg_thresh']: r['score'] for r in calibration['sweep']}
    assert sorted(scores) == [0.0, 1.0]
    # at 0 no pixel is background, at 1 all but the best segment's are:
    # the sweep sets the threshold of each test loop
    assert scores[0.0] != scores[1.0]
    chosen = calibration['bg_thresh']
    assert scores[chosen] == max(scores.values())
    assert f'chosen bg_thresh: {chosen}' in log
    # tools/test.py with the written config scores what the sweep did
    test_log = _ok(
        run_python(
            [
                'tools/test.py',
                out_config,
                toy_ckpt,
                '--work-dir',
                str(tmp_path / 't'),
            ]
        )
    )
    tested = float(re.findall(r'\(test\).*?mIoU: ([0-9.]+)', test_log)[-1])
    assert tested == pytest.approx(scores[chosen], abs=0.005)
