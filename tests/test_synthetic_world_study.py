"""The study's bookkeeping: logs in, tables out (no training here)."""

import importlib.util
import json
import math
import os.path as osp
import sys

import pytest

from tests.conftest import REPO_ROOT

BENCH = osp.join(REPO_ROOT, 'tools', 'benchmark')


@pytest.fixture(scope='module')
def study():
    sys.path.insert(0, BENCH)
    path = osp.join(BENCH, 'synthetic_world_study.py')
    spec = importlib.util.spec_from_file_location('study', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def result(name, seed, unseen, seen, minutes=2.0, segments=1.0):
    return dict(
        name=name,
        seed=seed,
        unseen_miou=unseen,
        seen_miou=seen,
        unseen_64_miou=unseen - 1.0,
        train_seconds=minutes * 60,
        loss=[(25, 9.0), (50, 8.0)],
        val_miou=[(157, 5.0), (314, 6.0)],
        diagnostics=dict(
            image_top1=0.5,
            groups_used=[3.0, segments],
            segments_per_image=segments,
            purity=0.75,
            fg_segment_acc=float('nan') if seed == 0 else 0.2,
            bg_segment_score=0.3,
            fg_segment_score=0.25,
        ),
    )


def test_scalars_and_test_logs_are_parsed(study, tmp_path):
    path = tmp_path / 'scalars.json'
    records = [
        {'loss': 9.5, 'step': 25},
        {'aAcc': 50.0, 'mIoU': 7.25, 'step': 157},
        {'lr': 0.001, 'step': 30},
        {'loss': 8.5, 'step': 50},
    ]
    path.write_text('\n'.join(json.dumps(r) for r in records))
    train, val = study.parse_scalars(str(path))
    assert train == [(25, 9.5), (50, 8.5)] and val == [(157, 7.25)]
    log = (
        'Epoch(val) [8][13/13] mIoU: 1.00\n'
        'Epoch(test) [13/13]    aAcc: 37.27  mIoU: 4.94  mAcc: 10.52\n'
    )
    assert study.test_miou(log) == 4.94
    with pytest.raises(RuntimeError, match='no mIoU'):
        study.test_miou('Epoch(val) mIoU: 3.0')


def test_the_best_validated_checkpoint_is_tested(study, tmp_path):
    (tmp_path / 'epoch_8.pth').write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_8.pth'))
    assert study.selected_checkpoint(str(tmp_path)) == str(
        tmp_path / 'epoch_8.pth'
    )
    (tmp_path / 'best_mIoU_epoch_6.pth').write_bytes(b'')
    assert study.selected_checkpoint(str(tmp_path)) == str(
        tmp_path / 'best_mIoU_epoch_6.pth'
    )


def test_tables_give_mean_spread_and_per_seed_differences(study):
    results = [
        result('groupvit', 0, 8.0, 9.0),
        result('groupvit', 1, 6.0, 7.0),
        result('mixreorg', 0, 9.0, 9.5, minutes=3.0),
        result('mixreorg', 1, 5.0, 6.0, minutes=3.0),
    ]
    rows = study.summary_rows(results, ['groupvit', 'mixreorg'])
    assert rows[0][1] == '0 1'
    # mean 7.0, sample std of (8, 6) = 1.41
    assert rows[0][2] == '7.0 ± 1.4 (6.0-8.0)'
    # the same checkpoints tested at the training resolution
    assert rows[0][4] == '6.0 ± 1.4 (5.0-7.0)'
    assert rows[1][5] == '3.0'
    per_seed = study.per_seed_rows(results, 'groupvit', 'mixreorg')
    assert per_seed == [
        [0, '8.00', '9.00', '+1.00'],
        [1, '6.00', '5.00', '-1.00'],
    ]
    diag = study.diagnostics_rows(results, ['groupvit'])
    # seed 0 made no object segment (NaN): the mean is over seed 1 only
    assert diag[0][5] == '0.200 (1 seeds)'
    assert study.seed_mean([math.nan]) == 'n/a'
    assert study.mean_spread([4.0]) == '4.0'


def test_curves_are_drawn(study, tmp_path):
    out = tmp_path / 'figs' / 'curves.png'
    results = [result('groupvit', 0, 8, 9), result('mixreorg', 0, 9, 9)]
    study.plot_curves(results, ['groupvit', 'mixreorg'], str(out))
    assert out.stat().st_size > 1000


def test_runs_train_in_parallel_jobs_and_come_back_in_order(
    study, tmp_path, monkeypatch
):
    import argparse
    import time

    calls = []

    def fake_run_one(name, seed, world, work_root, extra, threads=None):
        # the later runs finish first
        time.sleep(0.05 * (3 - seed))
        calls.append((name, seed, threads))
        return result(name, seed, 10.0 + seed, 11.0)

    monkeypatch.setattr(study, 'run_one', fake_run_one)
    monkeypatch.setattr(study, 'add_diagnostics', lambda r, *a, **k: r)
    monkeypatch.setattr(study.os, 'cpu_count', lambda: 4)
    done = tmp_path / 'groupvit_seed1'
    done.mkdir()
    (done / 'result.json').write_text(
        json.dumps(result('groupvit', 1, 3.0, 4.0))
    )
    args = argparse.Namespace(
        runs=['groupvit', 'mixreorg'],
        seeds=[0, 1, 2],
        ablation_seeds=[0],
        cfg_options=[],
        rerun=False,
        jobs=2,
    )
    results = study.run_all(args, 'world', str(tmp_path))
    assert [(r['name'], r['seed']) for r in results] == [
        (n, s) for n in ('groupvit', 'mixreorg') for s in (0, 1, 2)
    ]
    # the finished run is read, not trained again
    assert results[1]['unseen_miou'] == 3.0
    assert len(calls) == 5 and {c[2] for c in calls} == {2}
    assert [c[:2] for c in calls] != sorted(c[:2] for c in calls)
