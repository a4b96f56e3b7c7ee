"""MixReorg against GroupViT on synthetic worlds: worlds, seeds, ablations.

The study of docs/benchmarks.md. It trains on several worlds
(:data:`WORLDS`), each written by ``tools/misc/make_synthetic_world.py``
with other generator settings: object sizes, fills, backgrounds, caption
sentence frames, how often captions name colours, and the generator seed,
which draws other held-out pairs. Every world keeps colour independent of
shape, all 8 shapes and radii from about an eighth to a third of the side.

Every run trains one config of ``configs/synthetic_world`` with
``tools/train.py`` (same world, same schedule, so the same samples seen;
the wall time of each run is measured), validates zero-shot on the world's
``seen`` split during training (the log's mIoU curve), then tests the
checkpoint with the best validation mIoU (MMEngine's ``save_best``; the
README's main job tests the same one) zero-shot with ``tools/test.py`` on
the ``unseen`` split (held-out object pairs) and on the ``seen`` split.
The held-out pairs are only tested: the checkpoint is chosen on the seen
pairs, every world trains the same configs, and nothing of the recipe is
chosen on any world's held-out pairs. The report gives, per world, mean
and spread over seeds and the segment diagnostics; then, pooled over the
worlds, mean and spread over every (world, seed) result of a run and
MixReorg's lead over GroupViT on the held-out pairs for every (world,
seed). The plot shows loss and validation mIoU against iterations, a row
of panels per world::

    python tools/benchmark/synthetic_world_study.py \\
        [--worlds default small_solid large_textured] \\
        [--worlds-root data/study_worlds] [--seeds 0 1 2] \\
        [--runs groupvit mixreorg] [--ablation-seeds 0] \\
        [--work-dir work_dirs/synthetic_world_study] \\
        [--plot docs/figures/synthetic_world_curves.png] [--out FILE] \\
        [--cfg-options train_cfg.max_epochs=2] [--jobs 2]

``--worlds`` (default: every world of :data:`WORLDS`) writes each world
that ``--worlds-root`` does not hold yet (``ROOT/NAME``); a world whose
``world.json`` records other settings than :data:`WORLDS` asks for is an
error (remove its folder to write it again). ``--world PATH`` studies one
world written elsewhere instead. Runs keep their work dirs per world
(``WORK/WORLD/RUN_seedK``). ``--runs`` picks from :data:`RUNS` (the two
methods and the ablations of the paper's Table 5 kind);
``--ablation-seeds`` are the seeds of the ablation runs (the methods use
``--seeds``). A run whose work dir already holds its results
(``result.json``) is not trained again (``--rerun``); the tests of
:data:`TESTS` it lacks are run on its checkpoint. ``--jobs N`` trains
N runs at once, each on ``cores // N`` threads (``OMP_NUM_THREADS``): more
runs per hour on a small machine, but a run's numbers depend on its thread
count, so they differ a little from the same run trained alone.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import json
import math
import os
import os.path as osp
import re
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from _common import (  # noqa: E402
    REPO_ROOT,
    add_out_argument,
    markdown_table,
    report,
)

from mixreorg_mmseg.datasets.synthetic_world import (  # noqa: E402
    SyntheticWorld,
)

GROUPVIT = 'configs/synthetic_world/groupvit_tiny_synthetic-world-64x64.py'
MIXREORG = 'configs/synthetic_world/mixreorg_tiny_synthetic-world-64x64.py'
#: name -> (config, cfg options, description). The ablations change one
#: thing of the MixReorg config each; the stem's downsampling is changed
#: in both methods' configs, so that the two still differ only in mixing.
RUNS = {
    'groupvit': (GROUPVIT, [], 'GroupViT (mixing off)'),
    'mixreorg': (MIXREORG, [], 'MixReorg (default)'),
    'contextual_mixing': (
        MIXREORG,
        ['model.mixer.mix_layer=2'],
        'contextual mixing (after stage-1 layer 2)',
    ),
    'mix_layer_1': (
        MIXREORG,
        ['model.mixer.mix_layer=1'],
        'contextual mixing after stage-1 layer 1',
    ),
    'no_restored_loss': (
        MIXREORG,
        ['model.mixer.restored_contrastive_loss.loss_weight=0.0'],
        'without the restored-feature loss',
    ),
    'no_original_loss': (
        MIXREORG,
        [
            'model.contrastive_loss.loss_weight=0.0',
            'model.multi_label_loss.loss_weight=0.0',
        ],
        'without the original-feature losses',
    ),
    'mixed_seg_loss': (
        MIXREORG,
        ['model.mixer.mixed_segmentation_loss.loss_weight=1.0'],
        "with the mixed-image segmentation loss (weight 1, the paper's)",
    ),
    'group_size_4': (
        MIXREORG,
        ['model.mixer.group_size=4'],
        'mixing group of 4 images',
    ),
    'unit_2': (
        MIXREORG,
        ['model.mixer.unit=2'],
        'mixing units of 2x2 patches',
    ),
    'image_multi_label': (
        MIXREORG,
        ['model.multi_label_loss.pooling=image'],
        "multi-label loss on the image embedding (GroupViT's)",
    ),
    'no_group_usage': (
        MIXREORG,
        ['model.group_usage_loss.loss_weight=0.0'],
        'without the group-usage term',
    ),
    'group_readout': (
        MIXREORG,
        ['model.backbone.segment_readout=group'],
        "final segments from the last stage's tokens (GroupViT's readout)",
    ),
    'two_grouping_stages': (
        MIXREORG,
        [
            'model.backbone.depths=[2,1,1]',
            'model.backbone.num_heads=[2,2,2]',
            'model.backbone.num_group_tokens=[8,4,0]',
            'model.backbone.num_output_groups=[8,4]',
        ],
        'two grouping stages (8 then 4 groups)',
    ),
    'maxpool_stem': (
        MIXREORG,
        ['model.backbone.stem_downsample=maxpool'],
        'stem downsampling by 2x2 max-pooling',
    ),
    'groupvit_maxpool_stem': (
        GROUPVIT,
        ['model.backbone.stem_downsample=maxpool'],
        'GroupViT, stem downsampling by 2x2 max-pooling',
    ),
}
METHODS = ('groupvit', 'mixreorg')

#: What every study world writes, as the configs of
#: ``configs/synthetic_world`` read it: 64 px images, 10 training shards of
#: 1,000 pairs (their ``shards`` pattern), 200 images per zero-shot split.
WORLD_FILES = dict(
    image_size=64, num_train=10000, num_val=200, samples_per_shard=1000
)
#: The study's worlds: name -> (generator arguments, description). The
#: arguments are :func:`~mixreorg_mmseg.datasets.write_synthetic_world`'s
#: (each becomes an option of ``tools/misc/make_synthetic_world.py``),
#: added to :data:`WORLD_FILES`; what a world leaves out keeps the
#: generator's default. None gives colour away (``colour_by_shape`` stays
#: 0), all keep the 8 shapes and radii within an eighth to a third of the
#: side; each seed holds out other pairs.
WORLDS = {
    'default': (
        dict(seed=0),
        "the generator's defaults, seed 0: radii 1/8-1/3 of the side, solid, "
        'striped and dotted fills, plain, gradient and noise backgrounds, '
        'the full set of caption sentences, colours named in 3 of 10 '
        'captions',
    ),
    'small_solid': (
        dict(
            seed=1,
            radius_range=(0.125, 0.22),
            textures=['solid'],
            backgrounds=['plain'],
            caption_templates='terse',
            colour_prob=0.1,
        ),
        'smaller objects (radii 1/8-0.22 of the side), solid fills on plain '
        'backgrounds, terse captions, colours named in 1 of 10; seed 1 '
        '(other held-out pairs)',
    ),
    'large_textured': (
        dict(
            seed=2,
            radius_range=(0.2, 1 / 3),
            textures=['striped', 'dotted'],
            backgrounds=['noise'],
            caption_templates='descriptive',
            colour_prob=0.8,
            texture_prob=0.3,
        ),
        'larger objects (radii 0.2-1/3 of the side), striped and dotted '
        'fills on noise backgrounds, descriptive captions, colours named '
        'in 8 of 10 and fills in 3 of 10; seed 2 (other held-out pairs)',
    ),
}
#: ``write_synthetic_world`` arguments whose option of
#: ``tools/misc/make_synthetic_world.py`` is not ``--`` + the name with
#: dashes.
GENERATOR_FLAGS = {'image_size': '--size'}

#: the tests of every run's selected checkpoint: (result key, split, extra
#: ``--cfg-options``, extra ``tools/test.py`` flags, whether the test uses
#: the background threshold chosen on the seen pairs). ``unseen_unrefined``
#: tests the same checkpoint with the zero-shot head's pixel-adaptive
#: refinement off (what the refinement adds to the held-out pairs);
#: ``unseen_tta`` with the config's test-time augmentation (``--tta``);
#: the ``calibrated`` ones with the run's ``bg_thresh`` from
#: ``tools/analysis_tools/calibrate_background.py`` on the seen pairs
#: (the validation split), as README's main job tests.
TESTS = (
    ('seen', 'seen', [], [], False),
    ('unseen', 'unseen', [], [], False),
    (
        'unseen_unrefined',
        'unseen',
        ['model.decode_head.refine=None'],
        [],
        False,
    ),
    ('unseen_tta', 'unseen', [], ['--tta'], False),
    ('unseen_calibrated', 'unseen', [], [], True),
    ('unseen_calibrated_tta', 'unseen', [], ['--tta'], True),
)


def world_options(world: str) -> list[str]:
    """``--cfg-options`` that point every loader of a config, and the
    multi-label loss's noun vocabulary (the world's ``classes.txt``, read
    by the model and by the train pipeline's ``TokenizeCaption``, its fourth
    step), at ``world``."""
    return [
        f'train_dataloader.dataset.data_root={world}',
        f'val_dataloader.dataset.data_root={world}',
        f'test_dataloader.dataset.data_root={world}',
        f'model.noun_prompts.vocabulary={world}/classes.txt',
        f'train_dataloader.dataset.pipeline.3.vocabulary={world}/classes.txt',
    ]


def world_arguments(name: str, overrides: dict | None = None) -> dict:
    """The generator arguments of world ``name``: :data:`WORLD_FILES`,
    then its :data:`WORLDS` entry, then ``overrides`` (tiny worlds for
    tests)."""
    return {**WORLD_FILES, **WORLDS[name][0], **(overrides or {})}


def generator_command(root: str, arguments: dict) -> list[str]:
    """The ``tools/misc/make_synthetic_world.py`` command that writes a
    world of ``arguments`` under ``root`` (floats written exactly)."""
    command = [sys.executable, 'tools/misc/make_synthetic_world.py', root]
    for key, value in arguments.items():
        flag = GENERATOR_FLAGS.get(key, '--' + key.replace('_', '-'))
        values = value if isinstance(value, (list, tuple)) else [value]
        command += [
            flag,
            *(repr(v) if isinstance(v, float) else str(v) for v in values),
        ]
    return command


def expected_record(arguments: dict) -> dict:
    """What ``world.json`` records for a world of ``arguments``: the
    counts of files and the world's full configuration (defaults
    included), as JSON reads it back."""
    files = ('num_train', 'num_val', 'samples_per_shard')
    world = {k: v for k, v in arguments.items() if k not in files}
    record = {k: arguments[k] for k in files}
    record['world'] = SyntheticWorld(**world).config()
    return json.loads(json.dumps(record))


def record_differences(recorded: dict, expected: dict) -> list[str]:
    """``'key (recorded X, wanted Y)'`` for every setting in which a
    ``world.json`` differs from :func:`expected_record`."""
    differences = []
    for key, want in expected.items():
        if key == 'world':
            have = recorded.get('world', {})
            keys = sorted(set(want) | set(have))
            pairs = [(k, have.get(k), want.get(k)) for k in keys]
        else:
            pairs = [(key, recorded.get(key), want)]
        differences += [
            f'{k} (recorded {a}, wanted {b})' for k, a, b in pairs if a != b
        ]
    return differences


def prepare_world(
    name: str, worlds_root: str, overrides: dict | None = None
) -> str:
    """The folder of world ``name`` under ``worlds_root``, written first
    when it is missing (into ``NAME.partial``, renamed when complete, so
    an interrupted write is never taken for a world).

    Raises:
        ValueError: if the folder holds a world of other settings, or
            exists without a ``world.json``.
    """
    arguments = world_arguments(name, overrides)
    expected = expected_record(arguments)
    root = osp.join(worlds_root, name)
    world_file = osp.join(root, 'world.json')
    if osp.isfile(world_file):
        differences = record_differences(_read_json(world_file), expected)
        if differences:
            raise ValueError(
                f'{world_file} records other settings than world {name!r} '
                f'of WORLDS: {"; ".join(differences)}. Remove {root} to '
                'write it again, or give another --worlds-root'
            )
        print(f'world {name}: {root} (written before)', flush=True)
        return root
    if osp.exists(root):
        raise ValueError(
            f'{root} exists but holds no world.json: not a world this '
            'study wrote; remove it or give another --worlds-root'
        )
    partial = root + '.partial'
    if osp.exists(partial):
        shutil.rmtree(partial)
    os.makedirs(worlds_root, exist_ok=True)
    print(f'world {name}: writing {root}', flush=True)
    _run(generator_command(partial, arguments), root + '.log')
    differences = record_differences(
        _read_json(osp.join(partial, 'world.json')), expected
    )
    if differences:
        # the generator's options and the library's arguments disagree
        raise RuntimeError(
            f'tools/misc/make_synthetic_world.py wrote world {name!r} with '
            f'other settings than asked: {"; ".join(differences)}'
        )
    os.replace(partial, root)
    return root


def parse_scalars(path: str) -> tuple[list, list]:
    """``(train, val)`` records of an MMEngine ``scalars.json``: train
    records are ``(step, loss)``, val records ``(step, mIoU)``."""
    train, val = [], []
    with open(path, encoding='utf-8') as f:
        for line in f:
            record = json.loads(line)
            if 'mIoU' in record:
                val.append((int(record['step']), float(record['mIoU'])))
            elif 'loss' in record:
                train.append((int(record['step']), float(record['loss'])))
    return train, val


def test_miou(output: str) -> float:
    """The mIoU that ``tools/test.py`` logs last (``Epoch(test)`` /
    ``Iter(test)`` line)."""
    found = re.findall(r'\(test\).*?mIoU: ([0-9.]+)', output)
    if not found:
        raise RuntimeError(
            'tools/test.py printed no mIoU; its output ends with:\n'
            + output[-2000:]
        )
    return float(found[-1])


def _read_json(path: str):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def _run(cmd: list[str], log: str, threads: int | None = None) -> str:
    """Run ``cmd`` in the repository root, output to ``log`` (on
    ``threads`` threads when given); raise with the log's tail when it
    fails."""
    env = None
    if threads is not None:
        env = dict(
            os.environ,
            OMP_NUM_THREADS=str(threads),
            MKL_NUM_THREADS=str(threads),
        )
    with open(log, 'w', encoding='utf-8') as f:
        proc = subprocess.run(
            cmd, cwd=REPO_ROOT, stdout=f, stderr=subprocess.STDOUT, env=env
        )
    with open(log, encoding='utf-8') as f:
        text = f.read()
    if proc.returncode:
        raise RuntimeError(
            f'{" ".join(cmd)} failed ({proc.returncode}); {log} ends:\n'
            + text[-3000:]
        )
    return text


def run_one(
    name: str,
    seed: int,
    world: str,
    work_root: str,
    extra: list[str],
    threads: int | None = None,
) -> dict:
    """Train and test one (run, seed) (on ``threads`` threads when given);
    returns its result record (also written to ``WORK/result.json``)."""
    config = RUNS[name][0]
    work_dir = osp.join(work_root, f'{name}_seed{seed}')
    os.makedirs(work_dir, exist_ok=True)
    options = run_options(name, seed, world, extra)
    python = sys.executable
    begin = time.perf_counter()
    _run(
        [
            python,
            'tools/train.py',
            config,
            '--work-dir',
            work_dir,
            '--cfg-options',
            *options,
        ],
        osp.join(work_dir, 'train.log'),
        threads,
    )
    train_seconds = time.perf_counter() - begin
    checkpoint = selected_checkpoint(work_dir)
    scalars = sorted(
        osp.join(root, 'scalars.json')
        for root, _, files in os.walk(work_dir)
        if 'scalars.json' in files
    )[-1]
    train, val = parse_scalars(scalars)
    result = dict(
        name=name,
        seed=seed,
        train_seconds=train_seconds,
        loss=train,
        val_miou=val,
        checkpoint=osp.basename(checkpoint),
    )
    complete_result(result, world, work_dir, extra, threads)
    print(
        f'{osp.basename(work_root)}: {name} seed {seed}: unseen '
        f'{result["unseen_miou"]:.2f}, seen '
        f'{result["seen_miou"]:.2f} mIoU, {train_seconds:.0f} s',
        flush=True,
    )
    return result


def complete_result(
    result: dict,
    world: str,
    work_dir: str,
    extra: list[str],
    threads: int | None = None,
) -> dict:
    """Run every test of :data:`TESTS` that ``result`` has no mIoU of yet
    on the run's selected checkpoint, then add its segment diagnostics
    (:func:`add_diagnostics`, which writes ``WORK/result.json``): a test
    added to the study reaches runs trained before it."""
    config = RUNS[result['name']][0]
    options = run_options(result['name'], result['seed'], world, extra)
    checkpoint = selected_checkpoint(work_dir)
    for key, split, test_options, flags, calibrated in TESTS:
        if f'{key}_miou' in result:
            continue
        if calibrated:
            threshold = calibrate_background(
                result, config, checkpoint, options, work_dir, threads
            )
            test_options = [
                *test_options,
                f'model.decode_head.bg_thresh={threshold}',
            ]
        out = _run(
            [
                sys.executable,
                'tools/test.py',
                config,
                checkpoint,
                *flags,
                '--work-dir',
                osp.join(work_dir, f'test_{key}'),
                '--cfg-options',
                *options,
                f'test_dataloader.dataset.data_prefix.img_path=images/{split}',
                'test_dataloader.dataset.data_prefix.seg_map_path='
                f'annotations/{split}',
                *test_options,
            ],
            osp.join(work_dir, f'test_{key}.log'),
            threads,
        )
        result[f'{key}_miou'] = test_miou(out)
    return add_diagnostics(result, world, work_dir, extra, threads)


def calibrate_background(
    result: dict,
    config: str,
    checkpoint: str,
    options: list[str],
    work_dir: str,
    threads: int | None = None,
) -> float:
    """The run's background threshold chosen on the seen pairs (the
    config's validation split) by
    ``tools/analysis_tools/calibrate_background.py``; kept in ``result``
    (``bg_thresh``, and the sweep as ``bg_thresh_sweep``) so it is chosen
    once."""
    if 'bg_thresh' not in result:
        out = osp.join(work_dir, 'calibrate_background.json')
        _run(
            [
                sys.executable,
                'tools/analysis_tools/calibrate_background.py',
                config,
                checkpoint,
                '--work-dir',
                osp.join(work_dir, 'calibrate_background'),
                '--out-json',
                out,
                '--cfg-options',
                *options,
            ],
            osp.join(work_dir, 'calibrate_background.log'),
            threads,
        )
        calibration = _read_json(out)
        result['bg_thresh'] = calibration['bg_thresh']
        result['bg_thresh_sweep'] = calibration['sweep']
    return result['bg_thresh']


def run_options(name: str, seed: int, world: str, extra: list[str]):
    """The ``--cfg-options`` of one (run, seed)."""
    return [
        *world_options(world),
        f'randomness.seed={seed}',
        *RUNS[name][1],
        *extra,
    ]


def selected_checkpoint(work_dir: str) -> str:
    """The best checkpoint by validation mIoU in ``work_dir``
    (``best_mIoU_epoch_N.pth``), or the one MMEngine saved last when the
    run kept no best one."""
    best = sorted(
        glob.glob(osp.join(work_dir, 'best_mIoU_*.pth')),
        key=osp.getmtime,
    )
    if best:
        return best[-1]
    with open(osp.join(work_dir, 'last_checkpoint'), encoding='utf-8') as f:
        return f.read().strip()


def add_diagnostics(
    result: dict,
    world: str,
    work_dir: str,
    extra: list[str],
    threads: int | None = None,
) -> dict:
    """Add the segment diagnostics of the run's tested checkpoint on the
    ``unseen`` split (``tools/analysis_tools/segment_diagnostics.py``)
    to ``result`` and write it to ``WORK/result.json``."""
    if 'diagnostics' not in result:
        out = osp.join(work_dir, 'diagnostics.json')
        _run(
            [
                sys.executable,
                'tools/analysis_tools/segment_diagnostics.py',
                RUNS[result['name']][0],
                selected_checkpoint(work_dir),
                '--img-dir',
                osp.join(world, 'images', 'unseen'),
                '--ann-dir',
                osp.join(world, 'annotations', 'unseen'),
                '--out-json',
                out,
                '--cfg-options',
                *run_options(result['name'], result['seed'], world, extra),
            ],
            osp.join(work_dir, 'diagnostics.log'),
            threads,
        )
        result['diagnostics'] = _read_json(out)
    with open(osp.join(work_dir, 'result.json'), 'w', encoding='utf-8') as f:
        json.dump(result, f)
    return result


def seed_mean(values: list[float]) -> str:
    """Mean over the seeds that have a value (a seed whose model made no
    segment of a kind has NaN there), ``'n/a'`` when none has."""
    kept = [v for v in values if not math.isnan(v)]
    if not kept:
        return 'n/a'
    mean = statistics.mean(kept)
    return f'{mean:.3f}' + (
        f' ({len(kept)} seeds)' if len(kept) < len(values) else ''
    )


def diagnostics_rows(results: list[dict], names: list[str]) -> list[list]:
    """One row per run name: the seed-mean of each segment diagnostic."""
    keys = (
        'image_top1',
        'segments_per_image',
        'purity',
        'fg_segment_acc',
        'bg_segment_score',
        'fg_segment_score',
        'grouping_bound',
    )
    rows = []
    for name in names:
        mine = [r['diagnostics'] for r in results if r['name'] == name]
        if not mine:
            continue
        stage1 = statistics.mean(d['groups_used'][0] for d in mine)
        rows.append(
            [RUNS[name][2], f'{stage1:.2f}']
            + [seed_mean([d.get(k, math.nan) for d in mine]) for k in keys]
        )
    return rows


def mean_spread(values: list[float], digits: int = 1) -> str:
    """``'mean ± std (min-max)'`` of ``values`` (std over seeds), with
    ``digits`` decimals."""
    if len(values) == 1:
        return f'{values[0]:.{digits}f}'
    std = statistics.stdev(values)
    return (
        f'{statistics.mean(values):.{digits}f} ± {std:.{digits}f} '
        f'({min(values):.{digits}f}-{max(values):.{digits}f})'
    )


#: the results GroupViT and MixReorg are compared on seed by seed: (result
#: key, what the tables call it)
LEAD_TESTS = (
    ('unseen_miou', 'unseen pairs'),
    ('unseen_tta_miou', 'unseen pairs, --tta'),
    (
        'unseen_calibrated_tta_miou',
        'unseen pairs, --tta, background threshold chosen on the seen pairs',
    ),
)


def optional_mean_spread(
    results: list[dict], key: str, digits: int = 1
) -> str:
    """:func:`mean_spread` of ``key`` over ``results``; ``'-'`` unless
    every result has it."""
    if any(key not in r for r in results):
        return '-'
    return mean_spread([r[key] for r in results], digits)


def summary_rows(results: list[dict], names: list[str]) -> list[list]:
    """One table row per run name: seeds, unseen and seen mIoU (mean ±
    std, range), train minutes."""
    rows = []
    for name in names:
        mine = [r for r in results if r['name'] == name]
        if not mine:
            continue
        minutes = statistics.mean(r['train_seconds'] for r in mine) / 60
        rows.append(
            [
                RUNS[name][2],
                ' '.join(str(r['seed']) for r in mine),
                mean_spread([r['unseen_miou'] for r in mine]),
                mean_spread([r['seen_miou'] for r in mine]),
                mean_spread([r['unseen_unrefined_miou'] for r in mine]),
                optional_mean_spread(mine, 'unseen_tta_miou'),
                optional_mean_spread(mine, 'bg_thresh', digits=2),
                optional_mean_spread(mine, 'unseen_calibrated_tta_miou'),
                f'{minutes:.1f}',
            ]
        )
    return rows


def seed_pairs(
    results: list[dict], a: str, b: str, key: str = 'unseen_miou'
) -> list[tuple[int, float, float]]:
    """``(seed, a, b)`` mIoU (``key``: the unseen pairs; ``unseen_tta_miou``
    with ``--tta``) for every seed where both runs have it."""
    by_seed = {}
    for r in results:
        if r['name'] in (a, b) and key in r:
            by_seed.setdefault(r['seed'], {})[r['name']] = r[key]
    return [
        (seed, pair[a], pair[b])
        for seed, pair in sorted(by_seed.items())
        if a in pair and b in pair
    ]


def per_seed_rows(
    results: list[dict], a: str, b: str, key: str = 'unseen_miou'
) -> list[list]:
    """Seed by seed: ``key`` mIoU of ``a`` and ``b`` and their
    difference."""
    return [
        [seed, f'{va:.2f}', f'{vb:.2f}', f'{vb - va:+.2f}']
        for seed, va, vb in seed_pairs(results, a, b, key)
    ]


def pooled_rows(
    by_world: dict[str, list[dict]], names: list[str]
) -> list[list]:
    """One row per run name over every (world, seed) result: worlds,
    results, unseen and seen mIoU (mean ± std, range over all results),
    train minutes."""
    rows = []
    for name in names:
        worlds = [
            w
            for w, rs in by_world.items()
            if any(r['name'] == name for r in rs)
        ]
        mine = [r for rs in by_world.values() for r in rs if r['name'] == name]
        if not mine:
            continue
        minutes = statistics.mean(r['train_seconds'] for r in mine) / 60
        rows.append(
            [
                RUNS[name][2],
                len(worlds),
                len(mine),
                mean_spread([r['unseen_miou'] for r in mine]),
                mean_spread([r['seen_miou'] for r in mine]),
                mean_spread([r['unseen_unrefined_miou'] for r in mine]),
                optional_mean_spread(mine, 'unseen_tta_miou'),
                optional_mean_spread(mine, 'bg_thresh', digits=2),
                optional_mean_spread(mine, 'unseen_calibrated_tta_miou'),
                f'{minutes:.1f}',
            ]
        )
    return rows


def lead_rows(
    by_world: dict[str, list[dict]],
    a: str,
    b: str,
    key: str = 'unseen_miou',
) -> tuple[list[list], int, int]:
    """Every (world, seed) with both runs: ``[world, seed, a, b, b - a]``
    in ``key`` (the unseen pairs by default); then on how many of them
    ``b`` scores more than ``a`` (a tie is no lead), and how many there
    are."""
    rows, ahead = [], 0
    for world, results in by_world.items():
        for seed, va, vb in seed_pairs(results, a, b, key):
            rows.append(
                [world, seed, f'{va:.2f}', f'{vb:.2f}', f'{vb - va:+.2f}']
            )
            ahead += vb > va
    return rows, ahead, len(rows)


def world_report(results: list[dict], names: list[str]) -> str:
    """The tables of one world: summary, segment diagnostics and, with
    both methods, GroupViT against MixReorg seed by seed."""
    header = [
        'run',
        'seeds',
        'unseen pairs mIoU',
        'seen pairs mIoU',
        'unseen, unrefined',
        'unseen, --tta',
        'chosen bg_thresh',
        'unseen, --tta, chosen bg_thresh',
        'train min',
    ]
    text = (
        'Zero-shot mIoU (%, background included) of the checkpoint with the '
        'best validation mIoU (on the seen pairs), mean ± std over seeds '
        '(min-max)\n\n'
        + markdown_table(header, summary_rows(results, names))
        + '\n'
    )
    text += (
        '\nSegment diagnostics on the unseen pairs (seed mean; '
        'tools/analysis_tools/segment_diagnostics.py)\n\n'
        + markdown_table(
            [
                'run',
                'stage-1 groups used',
                'image top-1',
                'segments / image',
                'purity',
                'fg segment acc',
                'bg segment score',
                'fg segment score',
                'grouping bound mIoU',
            ],
            diagnostics_rows(results, names),
        )
        + '\n'
    )
    for key, what in LEAD_TESTS:
        pairs = per_seed_rows(results, 'groupvit', 'mixreorg', key)
        if pairs:
            text += (
                f'\nPer seed, {what}\n\n'
                + markdown_table(
                    ['seed', 'GroupViT', 'MixReorg', 'MixReorg - GroupViT'],
                    pairs,
                )
                + '\n'
            )
    return text


def pooled_report(by_world: dict[str, list[dict]], names: list[str]) -> str:
    """The tables over all worlds: every run's mean and spread over its
    (world, seed) results, and MixReorg's lead over GroupViT on the
    unseen pairs for every (world, seed) with a count."""
    text = (
        f'Zero-shot mIoU (%) pooled over {len(by_world)} worlds: mean ± std '
        '(min-max) over every (world, seed) result of a run\n\n'
        + markdown_table(
            [
                'run',
                'worlds',
                'results',
                'unseen pairs mIoU',
                'seen pairs mIoU',
                'unseen, unrefined',
                'unseen, --tta',
                'chosen bg_thresh',
                'unseen, --tta, chosen bg_thresh',
                'train min',
            ],
            pooled_rows(by_world, names),
        )
        + '\n'
    )
    for key, what in LEAD_TESTS:
        rows, ahead, total = lead_rows(by_world, 'groupvit', 'mixreorg', key)
        if rows:
            text += (
                f'\nPer world and seed, {what}\n\n'
                + markdown_table(
                    [
                        'world',
                        'seed',
                        'GroupViT',
                        'MixReorg',
                        'MixReorg - GroupViT',
                    ],
                    rows,
                )
                + f'\n\nMixReorg ahead on {ahead} of {total} (world, seed)'
                f', {what}\n'
            )
    return text


def plot_curves(
    by_world: dict[str, list[dict]], names: list[str], path: str
) -> None:
    """Loss and validation mIoU (``seen`` split) against iterations, a
    row of two panels per world, one line per (run, seed), one colour per
    run."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(by_world), 2, figsize=(10, 3.8 * len(by_world)), squeeze=False
    )
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for (world, results), (ax_loss, ax_miou) in zip(
        by_world.items(), axes, strict=True
    ):
        for i, name in enumerate(names):
            colour = colours[i % len(colours)]
            for j, r in enumerate(x for x in results if x['name'] == name):
                label = RUNS[name][2] if j == 0 else None
                if r['loss']:
                    steps, values = zip(*r['loss'], strict=True)
                    ax_loss.plot(
                        steps, values, color=colour, lw=1, label=label
                    )
                if r['val_miou']:
                    steps, values = zip(*r['val_miou'], strict=True)
                    ax_miou.plot(
                        steps, values, color=colour, marker='o', label=label
                    )
        ax_loss.set(
            title=f'world {world}',
            xlabel='iteration',
            ylabel='total training loss',
        )
        ax_miou.set(
            title=f'world {world}',
            xlabel='iteration',
            ylabel='zero-shot mIoU, seen split (val)',
        )
        ax_miou.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_all(
    args, worlds: dict[str, str], work_root: str
) -> dict[str, list[dict]]:
    """The result of every (world, run, seed) of ``args``: per world
    name (``worlds``: name -> folder), in the order of ``--runs`` then
    seeds; read where a run has one (``WORK/WORLD/RUN_seedK``), trained
    otherwise (``args.jobs`` at once, over all worlds)."""
    todo = [
        (world, name, seed)
        for world in worlds
        for name in args.runs
        for seed in (args.seeds if name in METHODS else args.ablation_seeds)
    ]
    done, pending = {}, []
    for world, name, seed in todo:
        path = osp.join(work_root, world, f'{name}_seed{seed}', 'result.json')
        if osp.isfile(path) and not args.rerun:
            done[world, name, seed] = path
        else:
            pending.append((world, name, seed))
    threads = None
    if args.jobs > 1:
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
    results = {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        # runs with results get only the tests and diagnostics they lack
        futures = {
            pool.submit(
                complete_result,
                _read_json(path),
                worlds[key[0]],
                osp.dirname(path),
                args.cfg_options,
                threads,
            ): key
            for key, path in done.items()
        }
        futures.update(
            {
                pool.submit(
                    run_one,
                    name,
                    seed,
                    worlds[world],
                    osp.join(work_root, world),
                    args.cfg_options,
                    threads,
                ): (world, name, seed)
                for world, name, seed in pending
            }
        )
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
    return {
        world: [results[key] for key in todo if key[0] == world]
        for world in worlds
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        '--worlds',
        nargs='+',
        choices=list(WORLDS),
        help='worlds of WORLDS to study (default: all), written under '
        '--worlds-root when missing',
    )
    where.add_argument(
        '--world',
        metavar='PATH',
        help='study one world written elsewhere instead',
    )
    parser.add_argument('--worlds-root', default='data/study_worlds')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument(
        '--runs', nargs='+', choices=sorted(RUNS), default=list(METHODS)
    )
    parser.add_argument(
        '--ablation-seeds',
        type=int,
        nargs='+',
        default=[0],
        help='seeds of the runs that are not one of the two methods',
    )
    parser.add_argument(
        '--work-dir', default='work_dirs/synthetic_world_study'
    )
    parser.add_argument(
        '--plot', help='PNG of loss and mIoU curves, a row per world'
    )
    parser.add_argument(
        '--rerun', action='store_true', help='train runs that have results'
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        default=[],
        help='options added to every run (e.g. a shorter schedule)',
    )
    parser.add_argument(
        '--jobs',
        type=int,
        default=1,
        help='runs trained at once, each on cores // jobs threads',
    )
    add_out_argument(parser)
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f'--jobs must be >= 1, got {args.jobs}')
    return args


def study_worlds(args) -> tuple[dict[str, str], dict[str, str]]:
    """``(folders, descriptions)`` of the worlds to study, by name: the
    ``--world`` folder (named after it), or the ``--worlds`` of
    :data:`WORLDS`, written first where missing."""
    if args.world:
        world = osp.abspath(args.world)
        if not osp.isfile(osp.join(world, 'world.json')):
            raise FileNotFoundError(
                f'{world}/world.json not found: write the world first with '
                f'python tools/misc/make_synthetic_world.py {args.world}'
            )
        name = osp.basename(osp.normpath(world))
        return {name: world}, {name: world}
    root = osp.abspath(args.worlds_root)
    names = args.worlds or list(WORLDS)
    folders = {name: prepare_world(name, root) for name in names}
    return folders, {name: WORLDS[name][1] for name in names}


def main(argv=None):
    args = parse_args(argv)
    try:
        worlds, descriptions = study_worlds(args)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f'synthetic_world_study.py: error: {error}') from None
    work_root = osp.abspath(args.work_dir)
    by_world = run_all(args, worlds, work_root)

    text = ''
    for world, results in by_world.items():
        text += (
            f'\n### World `{world}`\n\n{descriptions[world]}\n\n'
            + world_report(results, args.runs)
        )
    if len(by_world) > 1:
        text += '\n### All worlds\n\n' + pooled_report(by_world, args.runs)
    if args.plot:
        plot_curves(by_world, args.runs, args.plot)
        text += f'\nCurves: {args.plot}\n'
    report(text.lstrip('\n'), args.out, __file__, argv)
    return by_world


if __name__ == '__main__':
    main()
