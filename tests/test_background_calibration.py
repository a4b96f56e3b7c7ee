"""The background threshold chosen on validation data: the choice, the
config it writes, and the sweep's own test loops (a stub runner)."""

import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mixreorg_mmseg.apis.background_calibration import (
    DEFAULT_THRESHOLDS,
    choose_background_threshold,
    sweep_background_threshold,
    validation_as_test,
    write_threshold_config,
)
from mixreorg_mmseg.models.decode_heads import ZeroShotGroupHead

from .conftest import REPO_ROOT

CONFIG = osp.join(
    REPO_ROOT, 'configs/synthetic_world/mixreorg_tiny_synthetic-world-64x64.py'
)


def rows(*pairs):
    return [dict(bg_thresh=t, score=s) for t, s in pairs]


def test_the_default_grid_holds_the_configs_value_and_stays_in_range():
    # the synthetic-world configs' bg_thresh must be one of the values
    # tried, or a flat sweep could not keep it
    config = Config.fromfile(CONFIG)
    assert config.model.decode_head.bg_thresh in DEFAULT_THRESHOLDS
    assert list(DEFAULT_THRESHOLDS) == sorted(set(DEFAULT_THRESHOLDS))
    assert 0.0 <= DEFAULT_THRESHOLDS[0] and DEFAULT_THRESHOLDS[-1] <= 1.0


def test_the_best_score_is_chosen_and_ties_go_to_the_configs_value():
    assert choose_background_threshold(rows((0.4, 30), (0.6, 31)), 0.5) == 0.6
    # a flat sweep keeps the config's value
    flat = rows((0.4, 30), (0.5, 30), (0.6, 30))
    assert choose_background_threshold(flat, 0.5) == 0.5
    # equal scores at equal distance: the lower value
    assert choose_background_threshold(rows((0.4, 9), (0.6, 9)), 0.5) == 0.4
    # a NaN score (an evaluator without that class) is never chosen
    nan = rows((0.4, math.nan), (0.6, 1.0))
    assert choose_background_threshold(nan, 0.4) == 0.6
    with pytest.raises(ValueError, match='no threshold gave a score'):
        choose_background_threshold(rows((0.4, math.nan)), 0.5)


def test_the_written_config_inherits_and_sets_only_the_threshold(tmp_path):
    (tmp_path / 'deep').mkdir()
    path = str(tmp_path / 'deep' / 'calibrated.py')
    write_threshold_config(CONFIG, 0.65, path)
    written = Config.fromfile(path)
    original = Config.fromfile(CONFIG)
    assert written.model.decode_head.bg_thresh == 0.65
    written.model.decode_head.bg_thresh = original.model.decode_head.bg_thresh
    assert written.model.to_dict() == original.model.to_dict()
    assert written.tta_pipeline == original.tta_pipeline
    # the base is named relative to the file, as MMEngine resolves it
    text = open(path, encoding='utf-8').read()
    base = text.split('_base_ = [')[1].split(']')[0].strip("'")
    assert not osp.isabs(base)
    assert osp.samefile(osp.join(tmp_path, 'deep', base), CONFIG)


def test_the_test_loop_runs_the_validation_split():
    cfg = Config.fromfile(CONFIG)
    swapped = validation_as_test(cfg)
    assert swapped.test_dataloader == cfg.val_dataloader
    assert swapped.test_evaluator == cfg.val_evaluator
    # the caller's config keeps its test split
    assert cfg.test_dataloader.dataset.data_prefix.img_path == 'images/unseen'
    cfg.pop('val_dataloader')
    with pytest.raises(KeyError, match='no val_dataloader'):
        validation_as_test(cfg)


class StubRunner:
    """A runner whose test loop scores the head's current threshold."""

    def __init__(self, head):
        self.model = torch.nn.Module()
        self.model.decode_head = head
        self.seen = []

    def test(self):
        t = self.model.decode_head.bg_thresh
        self.seen.append(t)
        return {'mIoU': 100 - 100 * abs(t - 0.7), 'aAcc': 1.0}


def make_head(bg_thresh=0.5):
    return ZeroShotGroupHead(templates='simple', bg_thresh=bg_thresh)


def test_the_sweep_runs_a_test_loop_per_threshold_and_restores_the_head():
    runner = StubRunner(make_head())
    found = sweep_background_threshold(runner, [0.3, 0.7, 0.9])
    assert runner.seen == [0.3, 0.7, 0.9]
    assert [r['bg_thresh'] for r in found] == [0.3, 0.7, 0.9]
    assert found[1]['score'] == pytest.approx(100.0)
    assert choose_background_threshold(found, 0.5) == 0.7
    assert runner.model.decode_head.bg_thresh == 0.5
    with pytest.raises(KeyError, match="not 'mDice'"):
        sweep_background_threshold(runner, [0.3], metric='mDice')
    assert runner.model.decode_head.bg_thresh == 0.5
    with pytest.raises(ValueError, match=r'in \[0, 1\]: \[1.5\]'):
        sweep_background_threshold(runner, [0.3, 1.5])
    with pytest.raises(ValueError, match='no background class'):
        sweep_background_threshold(StubRunner(make_head(None)), [0.3])


def test_the_tool_refuses_thresholds_outside_0_1_before_any_work(tmp_path):
    import importlib.util

    path = osp.join(REPO_ROOT, 'tools/analysis_tools/calibrate_background.py')
    spec = importlib.util.spec_from_file_location('calibrate_tool', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    missing = str(tmp_path / 'missing.pth')
    with pytest.raises(SystemExit, match=r'\[0, 1\], got \[1\.5\]'):
        tool.main([CONFIG, missing, '--thresholds', '0.4', '1.5'])
    # in range, the next check names the missing checkpoint
    with pytest.raises(SystemExit, match='checkpoint not found'):
        tool.main([CONFIG, missing, '--thresholds', '0.4'])
