"""How fast can an image encoder learn the synthetic world when told the
answer? Supervised shape presence from the world's shards.

The text-supervised models learn the shapes only through captions; this
probe trains a config's backbone (GroupViT, its image embedding) with a
linear layer on the multi-label target "which shapes are in the image"
(binary cross-entropy), from the ``KEY.json`` that every shard sample of
the synthetic world carries. Its speed bounds what the text-supervised
recipe can reach in the same number of samples (the synthetic-world study,
docs/benchmarks.md)::

    python tools/misc/make_synthetic_world.py data/world_one --objects 1 1 \\
        --num-val 0
    python tools/analysis_tools/shape_probe.py \\
        configs/synthetic_world/groupvit_tiny_synthetic-world-64x64.py \\
        data/world_one [--epochs 5] [--lr 2e-3] [--warmup 300] \\
        [--cfg-options model.backbone.stem_channels=None]

Per epoch it prints the training loss and, on the last ``--holdout``
samples (never trained on), the exact-match accuracy (every shape right)
and the per-label accuracy. AdamW (weight decay 0.05), linear warm-up then
cosine, gradient clipping at 5, batch 64, the config's normalisation.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import math
import os.path as osp
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import webdataset as wds
from mmengine.config import Config, DictAction
from PIL import Image

import mixreorg_mmseg  # noqa: F401  (registers the models)


def read_world(root: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Images ``[N, 3, H, W]`` uint8, shape-presence targets ``[N, K]``
    and the shape names, from ``root/shards/*.tar`` and ``world.json``."""
    with open(osp.join(root, 'world.json'), encoding='utf-8') as f:
        shapes = json.load(f)['world']['shapes']
    paths = sorted(glob.glob(osp.join(root, 'shards', '*.tar')))
    if not paths:
        raise FileNotFoundError(f'no shards under {root}/shards')
    images, targets = [], []
    # webdataset groups each tar's members into samples by key
    for sample in wds.WebDataset(paths, shardshuffle=False, empty_check=False):
        where = f'{sample["__url__"]}: sample {sample["__key__"]}'
        if 'jpg' not in sample or 'json' not in sample:
            raise KeyError(f'{where} lacks .jpg or .json')
        image = Image.open(io.BytesIO(sample['jpg'])).convert('RGB')
        images.append(np.asarray(image))
        present = set(json.loads(sample['json'])['shapes'])
        targets.append([s in present for s in shapes])
    images = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    return images, torch.tensor(targets, dtype=torch.float32), shapes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config whose model.backbone to train')
    parser.add_argument('world', help='synthetic world root')
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument('--warmup', type=int, default=300, help='iterations')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--holdout', type=int, default=1000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)

    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    from mmseg.registry import MODELS

    torch.manual_seed(args.seed)
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    images, targets, shapes = read_world(args.world)
    if len(images) <= args.holdout:
        raise ValueError(
            f'{args.world} holds {len(images)} samples: need more than '
            f'--holdout {args.holdout}'
        )
    head = nn.Linear(backbone.embed_dims, len(shapes))
    pre = cfg.model.data_preprocessor
    mean = torch.tensor(pre['mean']).view(1, 3, 1, 1)
    std = torch.tensor(pre['std']).view(1, 3, 1, 1)

    def normalise(batch):  # images are RGB already
        return (batch.float() - mean) / std

    train_x, train_y = images[: -args.holdout], targets[: -args.holdout]
    test_x, test_y = images[-args.holdout :], targets[-args.holdout :]
    params = [*backbone.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)
    steps = len(train_x) // args.batch_size
    total = args.epochs * steps

    def factor(i):
        warm = min(1.0, (i + 1) / max(args.warmup, 1))
        return warm * 0.5 * (1 + math.cos(math.pi * min(i, total) / total))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    began = time.perf_counter()
    rows = []
    for epoch in range(args.epochs):
        backbone.train()
        order = torch.randperm(len(train_x))
        losses = []
        for i in range(steps):
            idx = order[i * args.batch_size : (i + 1) * args.batch_size]
            logits = head(backbone(normalise(train_x[idx])).image_embed)
            loss = F.binary_cross_entropy_with_logits(logits, train_y[idx])
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        backbone.eval()
        with torch.no_grad():
            predicted = torch.cat(
                [
                    head(backbone(normalise(test_x[j : j + 250])).image_embed)
                    for j in range(0, len(test_x), 250)
                ]
            )
        right = (predicted > 0) == test_y.bool()
        rows.append(
            dict(
                epoch=epoch + 1,
                samples=(epoch + 1) * steps * args.batch_size,
                loss=float(np.mean(losses)),
                exact=right.all(1).float().mean().item(),
                label_acc=right.float().mean().item(),
                seconds=time.perf_counter() - began,
            )
        )
        r = rows[-1]
        print(
            f'epoch {r["epoch"]}: {r["samples"]} samples, loss '
            f'{r["loss"]:.3f}, held-out exact {r["exact"]:.3f}, per label '
            f'{r["label_acc"]:.3f} ({r["seconds"]:.0f} s)',
            flush=True,
        )
    return rows


if __name__ == '__main__':
    main()
