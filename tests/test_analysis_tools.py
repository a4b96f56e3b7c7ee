"""The analysis tools run on a tiny synthetic world."""

import importlib.util
import os.path as osp

import pytest

from mixreorg_mmseg.datasets import write_synthetic_world
from tests.conftest import REPO_ROOT

CONFIG = osp.join(
    REPO_ROOT, 'configs/synthetic_world/groupvit_tiny_synthetic-world-64x64.py'
)


def _tool(name):
    path = osp.join(REPO_ROOT, 'tools', 'analysis_tools', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shape_probe_reads_the_shards_and_reports_every_epoch(tmp_path):
    root = str(tmp_path / 'world')
    write_synthetic_world(
        root, num_train=48, num_val=0, samples_per_shard=20, objects=(1, 1)
    )
    probe = _tool('shape_probe')
    images, targets, shapes = probe.read_world(root)
    assert images.shape == (48, 3, 64, 64) and targets.shape == (48, 8)
    assert (targets.sum(1) == 1).all()  # one object an image
    rows = probe.main(
        [CONFIG, root, '--epochs', '2', '--batch-size', '8']
        + ['--holdout', '16', '--warmup', '2']
    )
    assert [r['epoch'] for r in rows] == [1, 2]
    assert rows[-1]['samples'] == 2 * 4 * 8
    for r in rows:
        assert 0 <= r['exact'] <= r['label_acc'] <= 1 and r['loss'] > 0
    with pytest.raises(ValueError, match='holdout'):
        probe.main([CONFIG, root, '--holdout', '48'])
