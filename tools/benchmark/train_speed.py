"""Training throughput of the full-size models, side by side.

Times one optimizer step (forward, backward, AdamW) of each config's model
on a fixed batch of random images at the backbone's training size (224;
64 with ``--tiny``) with captions of the synthetic toy world, in fp32 and
under bf16 autocast (median of ``--steps`` steps after a warm-up one), and
prints a table with images/s and the ratios. The captions come tokenized,
with their noun prompts, as the training pipelines' ``TokenizeCaption``
gives them (made once, untimed: the dataloader workers' work); with
``--text-in-model`` as strings, which the step tokenizes itself. With
``--anchor`` (``../shared/anchors/official_groupvit.py``) and
``--official-git-dir`` (a git directory of NVlabs/GroupViT), the official
GroupViT is timed in the same run, on the same device (CPU or CUDA; its
text input is random token ids, [B, 4, 77]).

Against the machine: the FLOPs of one training step of each of our models
(forward and backward, counted once, untimed, with
``torch.utils.flop_counter.FlopCounterMode`` on the batch the timing uses:
matmuls, convolutions and attention; elementwise ops and the AdamW update
are not counted), the FLOP/s the timed step reaches, and its fraction of
the machine's matmul peak in the row's precision (the MFU column: model
FLOPs utilisation against what this device's matmul reaches, not against
a datasheet): the FLOP/s of a ``--matmul-size`` square matmul (2048: fp32,
and bf16 for the bf16 rows; use 8192 on a large GPU), median of 5 runs
after 2 warm-up ones, on the same device.

Last, the image encoder's eval forward at twice the training size
(448x448; batch 1), ours beside the official one.

    python tools/benchmark/train_speed.py \\
        configs/groupvit_vit-s_cc12m.py configs/mixreorg_vit-s_cc12m.py \\
        [--batch 16] [--steps 3] [--anchor A --official-git-dir DIR] \\
        [--matmul-size 2048] [--device cpu|cuda] [--text-in-model] \\
        [--out FILE]
    python tools/benchmark/train_speed.py --tiny   # quickstart configs

The configs default to both full-size ones (``groupvit``, ``mixreorg``:
short names of ``_common.TRAIN_CONFIGS``, or of the quickstart configs
with ``--tiny``).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import os.path as osp
import random

import torch
from _common import (
    TINY_TRAIN_CONFIGS,
    TRAIN_CONFIGS,
    add_out_argument,
    bf16_autocast,
    count_params,
    default_device,
    markdown_table,
    ratio,
    register_modules,
    repo_path,
    report,
    time_steps,
    train_step,
)

OFFICIAL = 'official GroupViT'
_OFFICIAL: dict = {}
PRECISIONS = {'fp32': torch.float32, 'bf16': torch.bfloat16}


def matmul_peak(
    size: int = 2048,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = 'cpu',
    runs: int = 5,
    warmup: int = 2,
) -> float:
    """The machine's matmul peak: FLOP/s (``2 size**3`` per product) of a
    ``size x size`` matmul in ``dtype`` on ``device``, median of ``runs``
    after ``warmup`` untimed ones (the device synchronised around each)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    out = torch.empty_like(a)
    seconds = time_steps(lambda: torch.mm(a, b, out=out), runs, warmup, device)
    return 2 * size**3 / seconds


def _cpu_sdpa_flops(query, key, value, *args, out_shape=None, **kwargs):
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward_flops(
    grad_out, query, key, value, *args, out_shape=None, **kwargs
):
    from torch.utils.flop_counter import sdpa_backward_flop_count

    return sdpa_backward_flop_count(grad_out, query, key, value)


def step_flops(step) -> int:
    """FLOPs of one call of ``step`` (which runs it: an optimizer step
    more), counted by ``FlopCounterMode``: matmuls, convolutions,
    attention (its CPU kernel too, which torch's table misses)."""
    from torch.utils.flop_counter import FlopCounterMode

    aten = torch.ops.aten
    cpu_sdpa = {
        aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flops,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: (
            _cpu_sdpa_backward_flops
        ),
    }
    with FlopCounterMode(display=False, custom_mapping=cpu_sdpa) as counter:
        step()
    return counter.get_total_flops()


def measure_ours(
    config: str,
    batch: int,
    steps: int,
    bf16: bool,
    device: str = 'cpu',
    count_flops: bool = True,
    text_in_model: bool = False,
) -> dict:
    """Parameters, median step seconds, images/s and (``count_flops``)
    the FLOPs of one step (counted before the timing, on its batch)."""
    model, step = train_step(
        config, batch, bf16, device=device, text_in_model=text_in_model
    )
    flops = step_flops(step) if count_flops else None
    seconds = time_steps(step, steps, device=device)
    return dict(
        params=count_params(model),
        seconds=seconds,
        img_per_s=batch / seconds,
        flops=flops,
        img_size=model.backbone.img_size,
    )


def ours(
    config: str, batch: int, steps: int, bf16: bool, device: str = 'cpu'
) -> tuple:
    """(parameters, images/s) of the config's training step."""
    row = measure_ours(config, batch, steps, bf16, device, False)
    return row['params'], row['img_per_s']


def forward_seconds(
    encoder,
    bf16: bool,
    size: int | tuple[int, int] = 448,
    device: str = 'cpu',
) -> float:
    """Median seconds of an eval-mode image-encoder forward, batch 1 (under
    bf16 autocast when ``bf16``: ``--cfg-options test_cfg.fp16=True`` in
    tools/test.py, which MMEngine runs as bf16 autocast on CPUs)."""
    height, width = (size, size) if isinstance(size, int) else size
    encoder.to(device).eval()
    images = torch.randn(1, 3, height, width, device=device)

    def forward():
        with bf16_autocast(device, bf16):
            encoder(images)

    with torch.no_grad():
        return time_steps(forward, 5, device=device)


def ours_backbone(config: str):
    from mmengine.config import Config
    from mmseg.registry import MODELS

    torch.manual_seed(0)
    return MODELS.build(Config.fromfile(config).model.backbone)


def official_model(anchor: str, git_dir: str, device: str = 'cpu'):
    """The anchor module and the official model (built once, moved to
    ``device``). Its loss gathers features across ranks: a one-process
    group is started (NCCL for CUDA, else gloo)."""
    import torch.distributed as dist
    import torch.nn as nn

    if (anchor, git_dir) in _OFFICIAL:
        return _OFFICIAL[anchor, git_dir]
    spec = importlib.util.spec_from_file_location('official_anchor', anchor)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not dist.is_initialized():
        os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
        os.environ.setdefault(
            'MASTER_PORT', str(29500 + random.randint(0, 999))
        )
        backend = 'nccl' if torch.device(device).type == 'cuda' else 'gloo'
        dist.init_process_group(backend, rank=0, world_size=1)
    convert = nn.SyncBatchNorm.convert_sync_batchnorm
    nn.SyncBatchNorm.convert_sync_batchnorm = classmethod(
        lambda cls, m, *a, **k: m
    )
    try:
        torch.manual_seed(0)
        model = mod.load_official(git_dir).build_model(mod.CFG)
    finally:
        nn.SyncBatchNorm.convert_sync_batchnorm = convert
    _OFFICIAL[anchor, git_dir] = mod, model
    model.to(device)
    return mod, model


def official(
    anchor: str,
    git_dir: str,
    batch: int,
    steps: int,
    bf16: bool,
    device: str = 'cpu',
):
    """(parameters, images/s) of the official model's training step on
    ``device`` (the anchor's ``time_train``)."""
    mod, model = official_model(anchor, git_dir, device)
    params = sum(p.numel() for p in model.parameters())
    ips = mod.time_train(model, batch, steps, bf16, (4, 77), device)
    return params, ips


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'configs',
        nargs='*',
        default=['groupvit', 'mixreorg'],
        help='config paths or short names (groupvit, mixreorg: the cc12m '
        'configs, or the quickstart ones with --tiny; the default: both); '
        'ratios are to the first',
    )
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--anchor', help='official_groupvit.py')
    parser.add_argument('--official-git-dir', help='NVlabs/GroupViT git dir')
    parser.add_argument(
        '--matmul-size',
        type=int,
        default=2048,
        help='side of the square matmul measuring the peak FLOP/s',
    )
    parser.add_argument(
        '--device',
        help='cpu or cuda (default: cuda where available)',
    )
    parser.add_argument(
        '--text-in-model',
        action='store_true',
        help='captions as strings, tokenized inside the timed step (as '
        'before the pipelines tokenized them)',
    )
    parser.add_argument(
        '--tiny',
        action='store_true',
        help='the tiny quickstart configs at 64 px (a smoke test in seconds)',
    )
    add_out_argument(parser)
    args = parser.parse_args(argv)
    official = bool(args.anchor and args.official_git_dir)
    if official and args.tiny:
        parser.error(
            '--anchor times the full-size official model: not with --tiny'
        )
    if args.device is None:
        args.device = default_device()
    return args


def device_name(device: str) -> str:
    """`` (NVIDIA H200)``-style name of a CUDA device, else ``''``."""
    if torch.device(device).type != 'cuda':
        return ''
    return f' ({torch.cuda.get_device_name(torch.device(device))})'


def resolve_config(config: str, tiny: bool) -> str:
    configs = TINY_TRAIN_CONFIGS if tiny else TRAIN_CONFIGS
    return repo_path(configs.get(config, config))


def significant(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits, no exponent."""
    if value <= 0 or not math.isfinite(value):
        return f'{value:g}'
    decimals = max(0, digits - 1 - math.floor(math.log10(value)))
    return f'{value:.{decimals}f}'


def main(argv=None) -> list[dict]:
    """Time, print the tables (and write them with ``--out``); returns
    the training rows as dicts."""
    args = parse_args(argv)
    register_modules()
    configs = [resolve_config(c, args.tiny) for c in args.configs]
    official_too = bool(args.anchor and args.official_git_dir)

    peaks = {
        precision: matmul_peak(args.matmul_size, dtype, args.device)
        for precision, dtype in PRECISIONS.items()
    }
    rows = []
    for precision in PRECISIONS:
        bf16 = precision == 'bf16'
        if official_too:
            params, ips = official(
                args.anchor,
                args.official_git_dir,
                args.batch,
                args.steps,
                bf16,
                args.device,
            )
            rows.append(
                dict(
                    model=OFFICIAL,
                    precision=precision,
                    params=params,
                    img_per_s=ips,
                    seconds=args.batch / ips,
                    flops=None,
                )
            )
        for config in configs:
            row = measure_ours(
                config,
                args.batch,
                args.steps,
                bf16,
                args.device,
                text_in_model=args.text_in_model,
            )
            row.update(model=osp.basename(config), precision=precision)
            rows.append(row)
    for row in rows:
        if row['flops'] is not None:
            row['flop_per_s'] = row['flops'] / row['seconds']
            row['matmul_peak'] = peaks[row['precision']]
            row['peak_fraction'] = row['flop_per_s'] / row['matmul_peak']

    table = []
    for precision in PRECISIONS:
        same = [r for r in rows if r['precision'] == precision]
        base = next(r for r in same if r['model'] != OFFICIAL)['img_per_s']
        off = next((r for r in same if r['model'] == OFFICIAL), None)
        for row in same:
            counted = row['flops'] is not None
            table.append(
                (
                    row['model'],
                    precision,
                    f'{row["params"] / 1e6:.2f}M',
                    f'{row["img_per_s"]:.2f}',
                    ratio(row['img_per_s'], base),
                    ratio(row['img_per_s'], off and off['img_per_s']),
                    significant(row['flops'] / 1e9) if counted else 'n/a',
                    significant(row['flop_per_s'] / 1e9) if counted else 'n/a',
                    significant(row['peak_fraction']) if counted else 'n/a',
                )
            )
    header = (
        'model',
        'precision',
        'params',
        'img/s',
        'vs first',
        'vs official',
        'GFLOP / step',
        'GFLOP/s',
        'MFU (of matmul peak)',
    )
    height, width = next(r for r in rows if r['model'] != OFFICIAL)['img_size']
    caption = (
        f'train step ({"tiny quickstart" if args.tiny else "full"} '
        f'configs), batch {args.batch} at {height}x{width}, median of '
        f'{args.steps} step(s) after a warm-up one, device {args.device}'
        f'{device_name(args.device)}, {torch.get_num_threads()} thread(s), '
        f'torch {torch.__version__}; captions '
        + (
            'tokenized in the step'
            if args.text_in_model
            else 'pre-tokenized (TokenizeCaption)'
        )
        + '\n\n'
        f'GFLOP / step: forward + backward of our models, counted with '
        f'torch.utils.flop_counter.FlopCounterMode (matmuls, convolutions, '
        f'attention; elementwise ops and the AdamW update, which the '
        f'timed step includes, are not counted; the official model is not '
        f'counted). GFLOP/s: GFLOP / step over the median step time. '
        f'Matmul peak: a {args.matmul_size}x{args.matmul_size} matmul on '
        f'the same device, median of 5 runs after 2 warm-up ones: '
        f'fp32 {peaks["fp32"] / 1e9:.1f} GFLOP/s, '
        f'bf16 {peaks["bf16"] / 1e9:.1f} GFLOP/s; MFU: GFLOP/s over the '
        f"matmul peak of the row's precision. A fraction above 1 is "
        f'possible: under CPU autocast '
        f'some ops run in fp32, and a CPU without bf16 units multiplies '
        f'bf16 more slowly than fp32.\n'
    )
    text = caption + '\n' + markdown_table(header, table)
    text += '\n\n' + forward_table(args, configs[0], official_too)
    report(text, args.out, __file__, argv)
    return rows


def forward_table(args, config: str, official_too: bool) -> str:
    """Caption and table of the image encoders' eval forward at twice the
    training size, batch 1."""
    encoders = []
    if official_too:
        _, model = official_model(
            args.anchor, args.official_git_dir, args.device
        )
        encoders.append((OFFICIAL, model.img_encoder))
    backbone = ours_backbone(config)
    encoders.append(('ours (GroupViT backbone)', backbone))
    size = tuple(2 * side for side in backbone.img_size)
    table = []
    for precision in PRECISIONS:
        bf16 = precision == 'bf16'
        times = [
            (n, forward_seconds(e, bf16, size, args.device))
            for n, e in encoders
        ]
        off = times[0][1] if times[0][0] == OFFICIAL else None
        for name, sec in times:
            table.append((name, precision, f'{sec:.3f}', ratio(sec, off)))
    caption = (
        f'image encoder forward, eval, batch 1 at {size[0]}x{size[1]}, '
        f'median of 5 after a warm-up one, device {args.device}\n'
    )
    return (
        caption
        + '\n'
        + markdown_table(
            ('model', 'precision', 'seconds', 'vs official'), table
        )
    )


if __name__ == '__main__':
    main()
