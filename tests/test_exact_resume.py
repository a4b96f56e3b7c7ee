"""A training run killed with SIGKILL and resumed with ``--resume`` ends
exactly where the uninterrupted run ends: the same weights and optimizer
state, bit for bit (CPU, one thread), and the same validation mIoU, with
the data read in the training process or by two dataloader workers.

The run is the README's main job scaled down: the synthetic world's
MixReorg (random mixing plans in the model, random crops and flips in the
data) on a world of 96 training images in 4 shards, 2 epochs of 12
batches, validated after each epoch, an iteration checkpoint every 5
iterations, so the kill falls inside the second epoch.
"""

import os
import os.path as osp
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config

from mixreorg_mmseg.utils.safe_checkpoint import safe_torch_load

from .conftest import REPO_ROOT, run_python

MAIN_JOB = osp.join(
    REPO_ROOT, 'configs/synthetic_world/mixreorg_tiny_synthetic-world-64x64.py'
)
BATCHES_PER_EPOCH = 12  # 96 images, batches of 8
LAST_ITER = 2 * BATCHES_PER_EPOCH
KILL_AFTER = 15  # the checkpoint of iteration 15: epoch 2, batch 3


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('resume_world'))
    proc = run_python(
        [
            'tools/misc/make_synthetic_world.py',
            root,
            '--num-train',
            '96',
            '--num-val',
            '8',
            '--samples-per-shard',
            '24',
        ]
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root


def write_config(world, path, num_workers):
    cfg = Config.fromfile(MAIN_JOB)
    classes = osp.join(world, 'classes.txt')
    cfg.model.noun_prompts.vocabulary = classes
    loader = cfg.train_dataloader
    for transform in loader.dataset.pipeline:
        if transform.type == 'TokenizeCaption':
            transform.vocabulary = classes
    loader.dataset.update(
        data_root=world,
        shards='shards/{00000..00003}.tar',
        epoch_size=96,
        shuffle_buffer=16,
    )
    loader.update(
        batch_size=8,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
    for split in (cfg.val_dataloader, cfg.test_dataloader):
        split.dataset.data_root = world
    cfg.train_cfg.max_epochs = 2
    cfg.param_scheduler = [
        dict(
            type='LinearLR',
            start_factor=0.5,
            by_epoch=False,
            begin=0,
            end=LAST_ITER,
        )
    ]
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=5, max_keep_ckpts=-1
    )
    cfg.default_hooks.logger.interval = 1
    cfg.dump(path)
    return str(path)


def train_command(config, work_dir, *extra):
    return [
        sys.executable,
        'tools/train.py',
        config,
        '--work-dir',
        str(work_dir),
        *extra,
    ]


def environment():
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    env['PYTHONPATH'] = REPO_ROOT + os.pathsep + env.get('PYTHONPATH', '')
    return env


def run_to_end(cmd):
    proc = subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def kill_after_checkpoint(cmd, work_dir, iteration):
    """Start ``cmd``, SIGKILL its process group once the checkpoint of
    ``iteration`` is complete (``last_checkpoint`` names it)."""
    pointer = osp.join(work_dir, 'last_checkpoint')
    wanted = f'iter_{iteration}.pth'
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if osp.isfile(pointer) and open(pointer).read().endswith(wanted):
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        if proc.poll() is None and time.monotonic() >= deadline:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, 'the run was not killed'


def final_miou(log):
    found = re.findall(r'Epoch\(val\) \[2\]\[\d+/\d+\].*?mIoU: ([\d.]+)', log)
    assert found, log[-3000:]
    return float(found[-1])


@pytest.mark.slow
@pytest.mark.parametrize('num_workers', [0, 2])
def test_killed_and_resumed_run_ends_bit_exact(world, tmp_path, num_workers):
    config = write_config(world, tmp_path / 'job.py', num_workers)
    whole, cut = tmp_path / 'whole', tmp_path / 'cut'
    whole_log = run_to_end(train_command(config, whole))

    kill_after_checkpoint(train_command(config, cut), str(cut), KILL_AFTER)
    last = open(cut / 'last_checkpoint').read()
    assert not last.endswith(f'iter_{LAST_ITER}.pth'), 'killed too late'
    resumed = int(re.search(r'iter_(\d+)\.pth$', last).group(1))
    assert resumed % BATCHES_PER_EPOCH, 'the kill should fall mid-epoch'
    cut_log = run_to_end(train_command(config, cut, '--resume'))

    # the progress display counts on from the resumed batch
    epoch, batch = divmod(resumed, BATCHES_PER_EPOCH)
    first = re.search(r'Epoch\(train\)\s+\[(\d+)\]\[\s*(\d+)/(\d+)\]', cut_log)
    assert first.groups() == (
        str(epoch + 1),
        str(batch + 1),
        str(BATCHES_PER_EPOCH),
    )
    assert f'Epoch(train) [2][{BATCHES_PER_EPOCH}/{BATCHES_PER_EPOCH}]' in (
        cut_log
    )

    a = safe_torch_load(str(whole / f'iter_{LAST_ITER}.pth'))
    b = safe_torch_load(str(cut / f'iter_{LAST_ITER}.pth'))
    assert a['meta']['iter'] == b['meta']['iter'] == LAST_ITER
    assert a['state_dict'].keys() == b['state_dict'].keys()
    differ = [
        key
        for key in a['state_dict']
        if not torch.equal(a['state_dict'][key], b['state_dict'][key])
    ]
    assert not differ, f'{len(differ)} tensors differ, e.g. {differ[:3]}'
    for group_a, group_b in zip(
        a['optimizer']['state'].values(),
        b['optimizer']['state'].values(),
        strict=True,
    ):
        for name in group_a:
            assert torch.equal(group_a[name], group_b[name]), name
    assert final_miou(cut_log) == final_miou(whole_log)


@pytest.mark.slow
def test_resume_with_nothing_to_resume_says_so(world, tmp_path):
    config = write_config(world, tmp_path / 'job.py', 0)
    proc = run_python(
        train_command(config, tmp_path / 'empty', '--resume')[1:]
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('--resume: nothing to resume')
    assert str(tmp_path / 'empty') in last


@pytest.mark.slow
def test_resuming_another_model_names_the_checkpoint_and_config(
    world, tmp_path
):
    config = write_config(world, tmp_path / 'job.py', 0)
    work = tmp_path / 'work'
    # a MixReorg run's checkpoint, then the GroupViT config on its work dir
    run_to_end(
        train_command(
            config,
            work,
            '--cfg-options',
            'train_cfg.max_epochs=1',
            'default_hooks.checkpoint.interval=12',
        )
    )
    groupvit = Config.fromfile(config)
    groupvit.model.mixer = None
    groupvit_config = str(tmp_path / 'groupvit_job.py')
    groupvit.dump(groupvit_config)
    proc = run_python(train_command(groupvit_config, work, '--resume')[1:])
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('CheckpointMismatchError: checkpoint ')
    assert str(work / 'iter_12.pth') in last and groupvit_config in last
    assert 'unexpected (not in the model)' in last and 'mixer.' in last
    assert 'Traceback' not in proc.stderr


# -- the pieces, fast ---------------------------------------------------------


def test_seeded_rng_repeats_per_key_and_leaves_the_process_state():
    import random

    import numpy as np

    from mixreorg_mmseg.utils.seeding import seeded_rng

    def draw():
        return (random.random(), np.random.rand(), torch.rand(1).item())

    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    with seeded_rng(0, 3, 7):
        first = draw()
    outside = draw()
    with seeded_rng(0, 3, 7):
        assert draw() == first
    with seeded_rng(0, 3, 8):
        assert draw() != first
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    # the blocks did not move the process's own generators
    assert draw() == outside


def _resume_cfg(work_dir):
    return Config(dict(resume=True, load_from=None, work_dir=str(work_dir)))


def test_explicit_resume_with_nothing_to_resume_fails(tmp_path):
    from mixreorg_mmseg.cli import resolve_resume

    with pytest.raises(SystemExit, match='--resume: nothing to resume'):
        resolve_resume(_resume_cfg(tmp_path), requested=True)


def test_config_resume_with_nothing_to_resume_starts_from_scratch(tmp_path):
    from mixreorg_mmseg.cli import resolve_resume

    cfg = _resume_cfg(tmp_path)
    resolve_resume(cfg, requested=False)
    assert cfg.resume is False and not cfg.get('custom_hooks')


def test_resume_points_at_the_latest_checkpoint_and_checks_it(tmp_path):
    from mixreorg_mmseg.cli import resolve_resume

    checkpoint = tmp_path / 'iter_5.pth'
    checkpoint.write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(checkpoint))
    cfg = _resume_cfg(tmp_path)
    resolve_resume(cfg, requested=True)
    assert cfg.load_from == str(checkpoint)
    (hook,) = cfg.custom_hooks
    assert hook['type'] == 'StrictLoadHook'
    assert hook['checkpoint'] == str(checkpoint)
    assert hook['drop_training_only'] is False
