"""MixReorg against GroupViT on the synthetic world: seeds and ablations.

The study of docs/benchmarks.md. Every run trains one config of
``configs/synthetic_world`` with ``tools/train.py`` (same world, same
schedule, so the same samples seen; the wall time of each run is measured),
validates zero-shot on the world's ``seen`` split during training (the
log's mIoU curve), then tests the checkpoint with the best validation mIoU
(MMEngine's ``save_best``; the held-out pairs take no part in the choice,
and the README's main job tests the same one) zero-shot with
``tools/test.py`` on the ``unseen`` split (held-out object pairs) and on
the ``seen`` split. The tables give mean and spread over seeds; the plot
shows loss and validation mIoU against iterations::

    python tools/misc/make_synthetic_world.py data/synthetic_world
    python tools/benchmark/synthetic_world_study.py \\
        [--world data/synthetic_world] [--seeds 0 1 2] \\
        [--runs groupvit mixreorg] [--ablation-seeds 0] \\
        [--work-dir work_dirs/synthetic_world_study] \\
        [--plot docs/figures/synthetic_world_curves.png] [--out FILE] \\
        [--cfg-options train_cfg.max_epochs=2] [--jobs 2]

``--runs`` picks from :data:`RUNS` (the two methods and the ablations of
the paper's Table 5 kind); ``--ablation-seeds`` are the seeds of the
ablation runs (the methods use ``--seeds``). A run whose work dir already
holds its results (``result.json``) is not trained again (``--rerun``).
``--jobs N`` trains N runs at once, each on ``cores // N`` threads
(``OMP_NUM_THREADS``): more runs per hour on a small machine, but a run's
numbers depend on its thread count, so they differ a little from the same
run trained alone.
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

GROUPVIT = 'configs/synthetic_world/groupvit_tiny_synthetic-world-64x64.py'
MIXREORG = 'configs/synthetic_world/mixreorg_tiny_synthetic-world-64x64.py'
#: name -> (config, cfg options, description). The ablations change one
#: thing of the MixReorg config each.
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
    'no_mixed_seg_loss': (
        MIXREORG,
        ['model.mixer.mixed_segmentation_loss.loss_weight=0.0'],
        'without the mixed-image segmentation loss',
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
}
METHODS = ('groupvit', 'mixreorg')
#: the tests of every run's selected checkpoint: (result key, split, extra
#: ``--cfg-options``). The configs test at 192 px (3x the training side);
#: ``unseen_64`` tests the same checkpoint at the training resolution
#: (their test pipeline's Resize is its second step).
TESTS = (
    ('seen', 'seen', []),
    ('unseen', 'unseen', []),
    (
        'unseen_64',
        'unseen',
        ['test_dataloader.dataset.pipeline.1.scale=(64,64)'],
    ),
)


def world_options(world: str) -> list[str]:
    """``--cfg-options`` that point every loader of a config, and the
    multi-label loss's noun vocabulary (the world's ``classes.txt``, read
    by the model and by the train pipeline's ``TokenizeCaption``, its third
    step), at ``world``."""
    return [
        f'train_dataloader.dataset.data_root={world}',
        f'val_dataloader.dataset.data_root={world}',
        f'test_dataloader.dataset.data_root={world}',
        f'model.noun_prompts.vocabulary={world}/classes.txt',
        f'train_dataloader.dataset.pipeline.2.vocabulary={world}/classes.txt',
    ]


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
    for key, split, test_options in TESTS:
        out = _run(
            [
                python,
                'tools/test.py',
                config,
                checkpoint,
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
    add_diagnostics(result, world, work_dir, extra, threads)
    print(
        f'{name} seed {seed}: unseen {result["unseen_miou"]:.2f}, seen '
        f'{result["seen_miou"]:.2f} mIoU, {train_seconds:.0f} s',
        flush=True,
    )
    return result


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
        with open(out, encoding='utf-8') as f:
            result['diagnostics'] = json.load(f)
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
    )
    rows = []
    for name in names:
        mine = [r['diagnostics'] for r in results if r['name'] == name]
        if not mine:
            continue
        stage1 = statistics.mean(d['groups_used'][0] for d in mine)
        rows.append(
            [RUNS[name][2], f'{stage1:.2f}']
            + [seed_mean([d[k] for d in mine]) for k in keys]
        )
    return rows


def mean_spread(values: list[float]) -> str:
    """``'mean ± std (min-max)'`` of ``values`` (std over seeds)."""
    if len(values) == 1:
        return f'{values[0]:.1f}'
    std = statistics.stdev(values)
    return (
        f'{statistics.mean(values):.1f} ± {std:.1f} '
        f'({min(values):.1f}-{max(values):.1f})'
    )


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
                mean_spread([r['unseen_64_miou'] for r in mine]),
                f'{minutes:.1f}',
            ]
        )
    return rows


def per_seed_rows(results: list[dict], a: str, b: str) -> list[list]:
    """Seed by seed: unseen mIoU of ``a`` and ``b`` and their difference."""
    by_seed = {}
    for r in results:
        if r['name'] in (a, b):
            by_seed.setdefault(r['seed'], {})[r['name']] = r['unseen_miou']
    rows = []
    for seed, pair in sorted(by_seed.items()):
        if a in pair and b in pair:
            rows.append(
                [
                    seed,
                    f'{pair[a]:.2f}',
                    f'{pair[b]:.2f}',
                    f'{pair[b] - pair[a]:+.2f}',
                ]
            )
    return rows


def plot_curves(results: list[dict], names: list[str], path: str) -> None:
    """Loss and validation mIoU (``seen`` split) against iterations, one
    line per (run, seed), one colour per run."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_miou) = plt.subplots(1, 2, figsize=(10, 3.8))
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    for i, name in enumerate(names):
        colour = colours[i % len(colours)]
        for j, r in enumerate(x for x in results if x['name'] == name):
            label = RUNS[name][2] if j == 0 else None
            if r['loss']:
                steps, values = zip(*r['loss'], strict=True)
                ax_loss.plot(steps, values, color=colour, lw=1, label=label)
            if r['val_miou']:
                steps, values = zip(*r['val_miou'], strict=True)
                ax_miou.plot(
                    steps, values, color=colour, marker='o', label=label
                )
    ax_loss.set(xlabel='iteration', ylabel='total training loss')
    ax_miou.set(xlabel='iteration', ylabel='zero-shot mIoU, seen split (val)')
    ax_miou.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_all(args, world: str, work_root: str) -> list[dict]:
    """The result of every (run, seed) of ``args``, in the order of
    ``--runs`` then seeds: read where a run has one, trained otherwise
    (``args.jobs`` at once)."""
    todo = [
        (name, seed)
        for name in args.runs
        for seed in (args.seeds if name in METHODS else args.ablation_seeds)
    ]
    results = {}
    pending = []
    for name, seed in todo:
        done = osp.join(work_root, f'{name}_seed{seed}', 'result.json')
        if osp.isfile(done) and not args.rerun:
            with open(done, encoding='utf-8') as f:
                result = json.load(f)
            results[name, seed] = add_diagnostics(
                result, world, osp.dirname(done), args.cfg_options
            )
        else:
            pending.append((name, seed))
    threads = None
    if args.jobs > 1:
        threads = max(1, (os.cpu_count() or 1) // args.jobs)
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {
            pool.submit(
                run_one,
                name,
                seed,
                world,
                work_root,
                args.cfg_options,
                threads,
            ): (name, seed)
            for name, seed in pending
        }
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
    return [results[key] for key in todo]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--world', default='data/synthetic_world')
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
    parser.add_argument('--plot', help='PNG of loss and mIoU curves')
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

    world = osp.abspath(args.world)
    if not osp.isfile(osp.join(world, 'world.json')):
        raise FileNotFoundError(
            f'{world}/world.json not found: write the world first with '
            f'python tools/misc/make_synthetic_world.py {args.world}'
        )
    work_root = osp.abspath(args.work_dir)
    results = run_all(args, world, work_root)

    header = [
        'run',
        'seeds',
        'unseen pairs mIoU',
        'seen pairs mIoU',
        'unseen, tested at 64 px',
        'train min',
    ]
    text = (
        'Zero-shot mIoU (%, background included) of the checkpoint with the '
        'best validation mIoU (on the seen pairs), mean ± std over seeds '
        '(min-max)\n\n'
        + markdown_table(header, summary_rows(results, args.runs))
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
            ],
            diagnostics_rows(results, args.runs),
        )
        + '\n'
    )
    pairs = per_seed_rows(results, 'groupvit', 'mixreorg')
    if pairs:
        text += (
            '\nPer seed, unseen pairs\n\n'
            + markdown_table(
                ['seed', 'GroupViT', 'MixReorg', 'MixReorg - GroupViT'],
                pairs,
            )
            + '\n'
        )
    if args.plot:
        plot_curves(results, args.runs, args.plot)
        text += f'\nCurves: {args.plot}\n'
    report(text, args.out, __file__, argv)
    return results


if __name__ == '__main__':
    main()
