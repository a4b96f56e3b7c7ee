"""README's main job in miniature: synthetic world -> MixReorg on its shards
-> zero-shot test on the held-out shape pairs, through the tools."""

import os.path as osp
import re

import pytest

from tests.conftest import run_python

CONFIG = 'configs/synthetic_world/mixreorg_tiny_synthetic-world-64x64.py'


@pytest.mark.slow
def test_main_job_trains_on_shards_and_reports_zero_shot_miou(tmp_path):
    world = str(tmp_path / 'world')
    work = str(tmp_path / 'work')
    made = run_python(
        [
            'tools/misc/make_synthetic_world.py',
            world,
            '--num-train',
            '192',
            '--num-val',
            '8',
        ]
    )
    assert made.returncode == 0, made.stderr[-3000:]
    assert osp.isfile(osp.join(world, 'shards', '00000.tar'))

    roots = [
        f'{key}.dataset.data_root={world}'
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    vocabulary = [
        f'model.noun_prompts.vocabulary={world}/classes.txt',
        f'train_dataloader.dataset.pipeline.3.vocabulary={world}/classes.txt',
    ]
    train = run_python(
        [
            'tools/train.py',
            CONFIG,
            '--work-dir',
            work,
            '--cfg-options',
            *roots,
            *vocabulary,
            'train_dataloader.dataset.shards=shards/{00000..00000}.tar',
            'train_dataloader.dataset.epoch_size=192',
            'train_dataloader.batch_size=32',
            'train_cfg.max_epochs=1',
            'param_scheduler.1.end=1',
        ]
    )
    log = train.stdout + train.stderr
    assert train.returncode == 0, log[-3000:]
    for key in ('loss_contrastive', 'loss_restored_contrastive'):
        assert key in log
    assert 'shard data: ' in log  # the skip counts reach the log
    assert re.search(r'Epoch\(val\) \[1\]\[\d+/\d+\].*mIoU', log)

    # as README's main job: the background threshold chosen on the
    # validation split, then the test with the config written with it
    calibrated = osp.join(work, 'calibrated', 'calibrated.py')
    calibrate = run_python(
        [
            'tools/analysis_tools/calibrate_background.py',
            CONFIG,
            osp.join(work, 'epoch_1.pth'),
            '--thresholds',
            '0.4',
            '0.6',
            '--work-dir',
            work,
            '--out-config',
            calibrated,
            '--cfg-options',
            roots[1],
        ]
    )
    log = calibrate.stdout + calibrate.stderr
    assert calibrate.returncode == 0, log[-3000:]
    assert re.search(r'chosen bg_thresh: 0\.[46] ', log)
    test = run_python(
        [
            'tools/test.py',
            calibrated,
            osp.join(work, 'epoch_1.pth'),
            # as README's main job tests: the config's test-time views
            '--tta',
            '--work-dir',
            work,
            '--cfg-options',
            roots[2],
        ]
    )
    log = test.stdout + test.stderr
    assert test.returncode == 0, log[-3000:]
    for name in ('background', 'disc', 'crescent'):
        assert re.search(rf'\|\s+{name}\s+\|', log), name
    assert re.search(r'(Epoch|Iter)\(test\).*mIoU: [\d.]+', log)
    # the written config outlives the test (the Runner's dump lands in the
    # work dir) and still serves the group picture, as README's main job
    picture = osp.join(work, 'groups.png')
    draw = run_python(
        [
            'tools/visualize_groups.py',
            osp.join(world, 'images', 'unseen', '00000.jpg'),
            calibrated,
            osp.join(work, 'epoch_1.pth'),
            '--device',
            'cpu',
            '--out',
            picture,
            '--classes',
            'disc,square',
        ]
    )
    assert draw.returncode == 0, (draw.stdout + draw.stderr)[-3000:]
    assert osp.isfile(picture)


def test_the_two_synthetic_world_configs_differ_only_in_the_mixing():
    from mmengine.config import Config

    from tests.conftest import REPO_ROOT

    configs = {}
    for name in ('groupvit', 'mixreorg'):
        cfg = Config.fromfile(
            osp.join(
                REPO_ROOT,
                f'configs/synthetic_world/{name}_tiny_synthetic-world-64x64.py',
            )
        ).to_dict()
        configs[name] = cfg
    groupvit, mixreorg = configs['groupvit'], configs['mixreorg']
    assert groupvit['model'].get('mixer') is None
    assert mixreorg['model']['mixer']['type'] == 'MixReorgMixer'
    groupvit['model'].pop('mixer', None)
    mixreorg['model'].pop('mixer')
    assert groupvit == mixreorg


def test_the_synthetic_world_nouns_are_the_classes_of_its_world(tmp_path):
    from mmengine.config import Config
    from mmseg.registry import MODELS

    from mixreorg_mmseg.datasets import write_synthetic_world
    from mixreorg_mmseg.datasets.synthetic_world import DEFAULT_SHAPES
    from tests.conftest import REPO_ROOT

    cfg = Config.fromfile(osp.join(REPO_ROOT, CONFIG))
    world = cfg.val_dataloader.dataset.data_root
    assert cfg.model.noun_prompts.vocabulary == f'{world}/classes.txt'
    for loader in ('train_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == world
    root = str(tmp_path / 'world')
    write_synthetic_world(
        root, num_train=8, num_val=0, samples_per_shard=8, objects=(1, 1)
    )
    nouns = MODELS.build(
        dict(
            cfg.model.noun_prompts,
            type='NounPromptBuilder',
            vocabulary=osp.join(root, 'classes.txt'),
        )
    )
    assert nouns.vocabulary.phrases == set(DEFAULT_SHAPES)
