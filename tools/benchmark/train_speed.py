"""Training throughput of the full-size models, side by side.

Times one optimizer step (forward, backward, AdamW) of each config's model
on a fixed batch of random 224x224 images with captions of the synthetic
toy world (tokenized, nouns extracted: the step includes the text side as
training runs it), in fp32 and under bf16 autocast, and prints a table with
images/s and the ratios. With ``--anchor`` (``../shared/anchors/
official_groupvit.py``) and ``--official-git-dir`` (a git directory of
NVlabs/GroupViT), the official GroupViT is timed in the same run. Last,
the image encoder's eval forward at 448x448 (batch 1), ours beside the
official one.

    python tools/benchmark/train_speed.py \\
        configs/groupvit_vit-s_cc12m.py configs/mixreorg_vit-s_cc12m.py \\
        [--batch 16] [--steps 3] [--anchor A --official-git-dir DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import os.path as osp
import random
import sys
import time

import torch

sys.path.insert(
    0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
)
import mixreorg_mmseg  # noqa: E402,F401  (registers, mmcv-lite compat)

_OFFICIAL: dict = {}


def toy_captions(n: int, seed: int = 0) -> list[str]:
    from mixreorg_mmseg.datasets.toy_image_captions import (
        generate_toy_image_captions,
    )

    return [c for _, _, c in generate_toy_image_captions(n, 32, seed, 'train')]


def time_steps(step, steps: int) -> float:
    """Median seconds of ``steps`` calls after one warm-up call."""
    step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def ours(config: str, batch: int, steps: int, bf16: bool) -> tuple:
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    cfg = Config.fromfile(config)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.randn(batch, 3, 224, 224)
    samples = [
        SegDataSample(metainfo=dict(caption=c)) for c in toy_captions(batch)
    ]

    def step():
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            losses = model(images, samples, mode='loss')
        loss = sum(v for k, v in losses.items() if k.startswith('loss'))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    params = sum(p.numel() for p in model.parameters())
    return params, batch / time_steps(step, steps)


def forward_seconds(encoder, bf16: bool, size: int = 448) -> float:
    """Median seconds of an eval-mode image-encoder forward, batch 1 (under
    bf16 autocast when ``bf16``: ``--cfg-options test_cfg.fp16=True`` in
    tools/test.py, which MMEngine runs as bf16 autocast on CPUs)."""
    encoder.eval()
    images = torch.randn(1, 3, size, size)

    def forward():
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            encoder(images)

    with torch.no_grad():
        return time_steps(forward, 5)


def ours_backbone(config: str):
    from mmengine.config import Config
    from mmseg.registry import MODELS

    torch.manual_seed(0)
    return MODELS.build(Config.fromfile(config).model.backbone)


def official_model(anchor: str, git_dir: str):
    import torch.distributed as dist
    import torch.nn as nn

    """The anchor module and the official model (built once)."""
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
        dist.init_process_group('gloo', rank=0, world_size=1)
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
    return mod, model


def official(anchor: str, git_dir: str, batch: int, steps: int, bf16: bool):
    mod, model = official_model(anchor, git_dir)
    params = sum(p.numel() for p in model.parameters())
    return params, mod.time_train(model, batch, steps, bf16, (4, 77))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--anchor', help='official_groupvit.py')
    parser.add_argument('--official-git-dir', help='NVlabs/GroupViT git dir')
    args = parser.parse_args()
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)

    rows = []
    for bf16 in (False, True):
        precision = 'bf16' if bf16 else 'fp32'
        if args.anchor and args.official_git_dir:
            params, ips = official(
                args.anchor,
                args.official_git_dir,
                args.batch,
                args.steps,
                bf16,
            )
            rows.append(('official GroupViT', precision, params, ips))
        for config in args.configs:
            params, ips = ours(config, args.batch, args.steps, bf16)
            rows.append((osp.basename(config), precision, params, ips))

    print(
        f'\ntrain step, batch {args.batch} at 224, {torch.get_num_threads()} '
        f'threads, torch {torch.__version__}\n'
    )
    header = (
        'model',
        'precision',
        'params',
        'img/s',
        'vs first',
        'vs official',
    )
    print('| ' + ' | '.join(header) + ' |')
    print('|---|---|---|---|---|---|')
    for precision in ('fp32', 'bf16'):
        same = [r for r in rows if r[1] == precision]
        base = next(r for r in same if r[0] != 'official GroupViT')[3]
        off = next((r[3] for r in same if r[0] == 'official GroupViT'), None)
        for name, _, params, ips in same:
            vs_off = f'{ips / off:.2f}x' if off else 'n/a'
            print(
                f'| {name} | {precision} | {params / 1e6:.2f}M | {ips:.2f} | '
                f'{ips / base:.2f}x | {vs_off} |'
            )
    print_forward_table(args)


def print_forward_table(args) -> None:
    encoders = []
    if args.anchor and args.official_git_dir:
        _, model = official_model(args.anchor, args.official_git_dir)
        encoders.append(('official GroupViT', model.img_encoder))
    encoders.append(
        ('ours (GroupViT backbone)', ours_backbone(args.configs[0]))
    )
    print('\nimage encoder forward, eval, batch 1 at 448x448\n')
    print('| model | precision | seconds | vs official |')
    print('|---|---|---|---|')
    for bf16 in (False, True):
        precision = 'bf16' if bf16 else 'fp32'
        rows = [(n, forward_seconds(e, bf16)) for n, e in encoders]
        off = rows[0][1] if rows[0][0].startswith('official') else None
        for name, sec in rows:
            ratio = f'{sec / off:.2f}x' if off else 'n/a'
            print(f'| {name} | {precision} | {sec:.3f} | {ratio} |')


if __name__ == '__main__':
    main()
