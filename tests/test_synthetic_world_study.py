"""The study's bookkeeping: logs in, tables out (no training here)."""

import importlib.util
import itertools
import json
import math
import os
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


def result(name, seed, unseen, seen, minutes=2.0, segments=1.0, tta=None):
    extra = {} if tta is None else dict(unseen_tta_miou=tta)
    return dict(
        **extra,
        name=name,
        seed=seed,
        unseen_miou=unseen,
        seen_miou=seen,
        unseen_unrefined_miou=unseen - 1.0,
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
    # no --tta test and no chosen threshold in these results
    assert rows[0][5:8] == ['-', '-', '-']
    assert rows[1][8] == '3.0'
    # the threshold chosen on the seen pairs, with two decimals
    for r, thresh, calibrated in zip(
        results[:2], (0.5, 0.6), (10.0, 12.0), strict=True
    ):
        r.update(bg_thresh=thresh, unseen_calibrated_tta_miou=calibrated)
    rows = study.summary_rows(results, ['groupvit', 'mixreorg'])
    assert rows[0][6:8] == [
        '0.55 ± 0.07 (0.50-0.60)',
        '11.0 ± 1.4 (10.0-12.0)',
    ]
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


def test_curves_are_drawn_a_row_per_world(study, tmp_path):
    out = tmp_path / 'figs' / 'curves.png'
    results = [result('groupvit', 0, 8, 9), result('mixreorg', 0, 9, 9)]
    by_world = {'default': results, 'small_solid': results}
    study.plot_curves(by_world, ['groupvit', 'mixreorg'], str(out))
    from PIL import Image

    # 2 rows of 3.8 inches at 110 dpi
    assert Image.open(out).size[1] == round(2 * 3.8 * 110)


def test_runs_train_in_parallel_jobs_and_come_back_in_order(
    study, tmp_path, monkeypatch
):
    import argparse
    import time

    calls = []

    def fake_run_one(name, seed, world, work_root, extra, threads=None):
        # the later runs finish first
        time.sleep(0.02 * (3 - seed))
        calls.append((name, seed, world, work_root, threads))
        return result(name, seed, 10.0 + seed, 11.0)

    completed = []

    def fake_complete(r, world, work_dir, extra, threads=None):
        completed.append((r['name'], r['seed'], world, work_dir, threads))
        return r

    monkeypatch.setattr(study, 'run_one', fake_run_one)
    monkeypatch.setattr(study, 'complete_result', fake_complete)
    monkeypatch.setattr(study.os, 'cpu_count', lambda: 4)
    done = tmp_path / 'one' / 'groupvit_seed1'
    done.mkdir(parents=True)
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
    worlds = {'one': 'path/one', 'two': 'path/two'}
    by_world = study.run_all(args, worlds, str(tmp_path))
    assert list(by_world) == ['one', 'two']
    for results in by_world.values():
        assert [(r['name'], r['seed']) for r in results] == [
            (n, s) for n in ('groupvit', 'mixreorg') for s in (0, 1, 2)
        ]
    # the finished run is read, not trained again; only in its own world
    assert by_world['one'][1]['unseen_miou'] == 3.0
    assert by_world['two'][1]['unseen_miou'] == 11.0
    # ... but given the tests and diagnostics it lacks, in the pool
    assert completed == [
        ('groupvit', 1, 'path/one', str(done), 2),
    ]
    assert len(calls) == 11 and {c[4] for c in calls} == {2}
    # every run trains on its world, in a work dir under the world's name
    for *_, world, work_root, _ in calls:
        key = osp.basename(world)
        assert world == worlds[key]
        assert work_root == str(tmp_path / key)
    assert [c[:2] for c in calls] != sorted(c[:2] for c in calls)


def test_pooled_tables_and_the_lead_count(study):
    by_world = {
        'a': [
            result('groupvit', 0, 10.0, 12.0, tta=12.0),
            result('groupvit', 1, 20.0, 22.0, tta=21.0),
            result('mixreorg', 0, 14.0, 15.0, minutes=4.0, tta=11.0),
            result('mixreorg', 1, 20.0, 21.0, minutes=4.0, tta=25.0),
        ],
        'b': [
            result('groupvit', 0, 30.0, 31.0),
            result('mixreorg', 0, 29.5, 30.0, minutes=4.0),
            # no GroupViT seed 5 here: not a (world, seed) of the count
            result('mixreorg', 5, 50.0, 50.0, minutes=4.0),
        ],
    }
    rows = study.pooled_rows(by_world, ['groupvit', 'mixreorg'])
    # GroupViT: 10, 20, 30 -> mean 20, sample std 10
    assert rows[0][1:4] == [2, 3, '20.0 ± 10.0 (10.0-30.0)']
    # MixReorg: 14, 20, 29.5, 50 -> mean 28.375, std 15.76
    assert rows[1][1:4] == [2, 4, '28.4 ± 15.8 (14.0-50.0)']
    assert rows[1][9] == '4.0'
    # world b has no --tta results: no pooled --tta column
    assert rows[0][6] == '-'
    lead, ahead, total = study.lead_rows(by_world, 'groupvit', 'mixreorg')
    assert lead == [
        ['a', 0, '10.00', '14.00', '+4.00'],
        ['a', 1, '20.00', '20.00', '+0.00'],
        ['b', 0, '30.00', '29.50', '-0.50'],
    ]
    # a tie is no lead
    assert (ahead, total) == (1, 3)
    text = study.pooled_report(by_world, ['groupvit', 'mixreorg'])
    assert 'pooled over 2 worlds' in text
    assert 'MixReorg ahead on 1 of 3 (world, seed), unseen pairs\n' in text
    # with --tta only world a's two seeds have both runs
    lead, ahead, total = study.lead_rows(
        by_world, 'groupvit', 'mixreorg', 'unseen_tta_miou'
    )
    assert [row[:2] for row in lead] == [['a', 0], ['a', 1]]
    assert (ahead, total) == (1, 2)
    assert 'MixReorg ahead on 1 of 2 (world, seed), unseen pairs, --tta' in (
        text
    )


def test_main_reports_each_world_then_the_pooled_tables(
    study, tmp_path, monkeypatch, capsys
):
    prepared = []

    def fake_prepare(name, root, overrides=None):
        prepared.append(name)
        return osp.join(root, name)

    def fake_run_all(args, worlds, work_root):
        assert work_root == str(tmp_path / 'work')
        return {
            name: [
                result('groupvit', 0, 10.0, 12.0),
                result('mixreorg', 0, 10.0 + k, 15.0),
            ]
            for k, name in enumerate(worlds)
        }

    monkeypatch.setattr(study, 'prepare_world', fake_prepare)
    monkeypatch.setattr(study, 'run_all', fake_run_all)
    out = tmp_path / 'study.md'
    work = str(tmp_path / 'work')
    study.main(['--work-dir', work, '--out', str(out)])
    # every world of the table, by default
    assert prepared == list(study.WORLDS)
    text = out.read_text()
    for name, (_, description) in study.WORLDS.items():
        assert f'### World `{name}`\n\n{description}' in text
    assert text.index('### All worlds') > text.index('### World')
    # the first world is a tie
    count = len(study.WORLDS) - 1
    assert f'MixReorg ahead on {count} of {len(study.WORLDS)}' in text
    prepared.clear()
    capsys.readouterr()
    study.main(['--worlds', 'small_solid', '--work-dir', work])
    assert prepared == ['small_solid']
    # one world: no pooled tables
    assert '### All worlds' not in capsys.readouterr().out


def test_world_and_worlds_are_exclusive(study, tmp_path, capsys):
    with pytest.raises(SystemExit):
        study.parse_args(['--world', str(tmp_path), '--worlds', 'default'])
    assert 'not allowed with' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        study.parse_args(['--worlds', 'no_such_world'])
    # --world names the world after its folder; it must hold a world
    with pytest.raises(SystemExit, match='world.json not found'):
        study.main(['--world', str(tmp_path / 'mine')])
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'world.json').write_text('{}')
    args = study.parse_args(['--world', str(tmp_path / 'mine')])
    folders, _ = study.study_worlds(args)
    assert folders == {'mine': str(tmp_path / 'mine')}


def test_every_world_keeps_the_task_and_varies_the_generator(study):
    from mixreorg_mmseg.datasets.synthetic_world import (
        DEFAULT_SHAPES,
        SyntheticWorld,
    )

    configs = {}
    for name, (arguments, description) in study.WORLDS.items():
        assert description
        # the configs read these files: a world may not change them
        assert not set(arguments) & set(study.WORLD_FILES), name
        config = study.expected_record(study.world_arguments(name))['world']
        configs[name] = config
        # no colour cue to the shape, all 8 shapes, radii about 1/8-1/3
        assert config['colour_by_shape'] == 0, name
        assert config['shapes'] == list(DEFAULT_SHAPES), name
        assert len(config['shapes']) == 8
        low, high = config['radius_range']
        assert 0.12 <= low <= high <= 0.34, name
        assert config['image_size'] == 64
    assert len(configs) >= 3
    assert configs['default'] == SyntheticWorld(seed=0).config()
    for a, b in itertools.combinations(configs, 2):
        besides_seed = [
            key
            for key in configs[a]
            if key not in ('seed', 'heldout_pairs')
            and configs[a][key] != configs[b][key]
        ]
        assert len(besides_seed) >= 2, (a, b, besides_seed)
        # and they hold out other pairs
        assert configs[a]['heldout_pairs'] != configs[b]['heldout_pairs']


TINY = dict(image_size=32, num_train=12, num_val=3, samples_per_shard=5)


@pytest.fixture
def in_process_generator(study, monkeypatch):
    """``_run`` of the study running ``make_synthetic_world.py``'s main in
    this process (its options parsed as on the command line); the
    commands it ran."""
    path = osp.join(REPO_ROOT, 'tools', 'misc', 'make_synthetic_world.py')
    spec = importlib.util.spec_from_file_location('make_world', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    commands = []

    def fake_run(cmd, log, threads=None):
        assert cmd[1] == 'tools/misc/make_synthetic_world.py'
        commands.append(cmd)
        tool.main(cmd[2:])
        return ''

    monkeypatch.setattr(study, '_run', fake_run)
    return commands


def test_worlds_are_written_once_and_a_changed_world_is_refused(
    study, tmp_path, in_process_generator
):
    root = str(tmp_path / 'worlds')
    # an interrupted earlier write is not taken for a world
    os.makedirs(osp.join(root, 'small_solid.partial', 'shards'))
    folder = study.prepare_world('small_solid', root, TINY)
    assert folder == osp.join(root, 'small_solid')
    assert len(in_process_generator) == 1
    assert not osp.exists(folder + '.partial')
    with open(osp.join(folder, 'world.json'), encoding='utf-8') as f:
        info = json.load(f)
    arguments = study.WORLDS['small_solid'][0]
    for key in ('seed', 'textures', 'backgrounds', 'caption_templates'):
        assert info['world'][key] == arguments[key]
    assert info['world']['radius_range'] == list(arguments['radius_range'])
    assert info['num_train'] == 12 and info['world']['image_size'] == 32
    assert len(os.listdir(osp.join(folder, 'images', 'unseen'))) == 3
    # the same world again: read, not written
    assert study.prepare_world('small_solid', root, TINY) == folder
    assert len(in_process_generator) == 1
    # asked with other settings, or recorded with other ones: an error
    # that names the setting
    with pytest.raises(ValueError, match=r'num_val \(recorded 3, wanted 4'):
        study.prepare_world('small_solid', root, dict(TINY, num_val=4))
    info['world']['radius_range'] = [0.125, 0.3]
    with open(osp.join(folder, 'world.json'), 'w', encoding='utf-8') as f:
        json.dump(info, f)
    with pytest.raises(ValueError, match='radius_range'):
        study.prepare_world('small_solid', root, TINY)
    os.makedirs(osp.join(root, 'default'))
    with pytest.raises(ValueError, match='holds no world.json'):
        study.prepare_world('default', root, TINY)
    assert len(in_process_generator) == 1


def test_every_world_command_writes_what_the_world_asks(
    study, tmp_path, in_process_generator
):
    """Each world's generator command, parsed by the generator's own
    options, records the settings of :data:`WORLDS` (the defaults it
    leaves out included)."""
    root = str(tmp_path / 'worlds')
    for name in study.WORLDS:
        study.prepare_world(name, root, TINY)
    assert len(in_process_generator) == len(study.WORLDS)
    captions = {}
    for name in study.WORLDS:
        with open(
            osp.join(root, name, 'captions', 'unseen.jsonl'), encoding='utf-8'
        ) as f:
            captions[name] = [json.loads(line)['caption'] for line in f]
    assert len({tuple(c) for c in captions.values()}) == len(study.WORLDS)


@pytest.mark.slow
def test_a_world_is_written_by_the_generator_tool(study, tmp_path):
    folder = study.prepare_world('large_textured', str(tmp_path), TINY)
    with open(osp.join(folder, 'world.json'), encoding='utf-8') as f:
        info = json.load(f)
    assert info['world']['caption_templates'] == 'descriptive'
    assert osp.isfile(str(tmp_path / 'large_textured.log'))


@pytest.mark.parametrize('run', ['groupvit', 'mixreorg'])
def test_world_options_reach_every_loader_and_the_caption_vocabulary(
    study, run
):
    from mmengine.config import Config

    cfg = Config.fromfile(osp.join(REPO_ROOT, study.RUNS[run][0]))
    options = dict(o.split('=', 1) for o in study.world_options('w/x'))
    cfg.merge_from_dict(options)
    for loader in ('train', 'val', 'test'):
        assert cfg[f'{loader}_dataloader'].dataset.data_root == 'w/x'
    assert cfg.model.noun_prompts.vocabulary == 'w/x/classes.txt'
    # the vocabulary lands on TokenizeCaption, not on a step before it
    pipeline = cfg.train_dataloader.dataset.pipeline
    with_vocabulary = [
        (t.type, t.vocabulary) for t in pipeline if 'vocabulary' in t
    ]
    assert with_vocabulary == [('TokenizeCaption', 'w/x/classes.txt')]


def test_a_result_gets_only_the_tests_it_lacks(study, tmp_path, monkeypatch):
    commands = []

    def fake_run(cmd, log, threads=None):
        commands.append(cmd)
        if cmd[1] == 'tools/analysis_tools/calibrate_background.py':
            out = cmd[cmd.index('--out-json') + 1]
            sweep = [dict(bg_thresh=0.5, score=1.0)]
            with open(out, 'w', encoding='utf-8') as f:
                json.dump(dict(bg_thresh=0.65, sweep=sweep), f)
            return ''
        return 'Epoch(test) [13/13]    aAcc: 80.0000  mIoU: 12.5000\n'

    monkeypatch.setattr(study, '_run', fake_run)
    monkeypatch.setattr(study, 'selected_checkpoint', lambda d: 'ck.pth')
    monkeypatch.setattr(study, 'add_diagnostics', lambda r, *a, **k: r)
    old = result('mixreorg', 1, 30.0, 31.0)
    done = study.complete_result(old, 'w/x', str(tmp_path), [])
    # seen, unseen and unrefined were there: the --tta test runs, then the
    # threshold is chosen once (on the seen split, the config's validation
    # split) for both tests that use it
    tools = [cmd[1] for cmd in commands]
    assert tools == [
        'tools/test.py',
        'tools/analysis_tools/calibrate_background.py',
        'tools/test.py',
        'tools/test.py',
    ]
    cmd = commands[0]
    assert cmd[1:4] == ['tools/test.py', study.RUNS['mixreorg'][0], 'ck.pth']
    assert cmd[4] == '--tta'
    assert 'test_dataloader.dataset.data_prefix.img_path=images/unseen' in cmd
    assert commands[1][2:4] == [study.RUNS['mixreorg'][0], 'ck.pth']
    assert not any('images/unseen' in c for c in commands[1])
    for cmd, tta in ((commands[2], False), (commands[3], True)):
        assert cmd[-1] == 'model.decode_head.bg_thresh=0.65'
        assert ('--tta' in cmd) == tta
        assert (
            'test_dataloader.dataset.data_prefix.img_path=images/unseen' in cmd
        )
    assert done['unseen_tta_miou'] == 12.5
    assert done['unseen_calibrated_tta_miou'] == 12.5
    assert done['bg_thresh'] == 0.65
    assert done['unseen_miou'] == 30.0
    commands.clear()
    study.complete_result(done, 'w/x', str(tmp_path), [])
    assert commands == []
