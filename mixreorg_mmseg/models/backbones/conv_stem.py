"""A convolutional stem in place of the patch projection of a ViT.

Xiao et al., "Early Convolutions Help Transformers See Better" (NeurIPS
2021, arXiv 2106.14881): replacing the single stride-p patch projection by
a few stride-2 3x3 convolutions (BatchNorm, ReLU) and a 1x1 projection makes
ViTs train faster and more stably, most of all on little data. GroupViT's
reference model keeps the patch projection (``GroupViT(stem_channels=
None)``, which the official checkpoints load onto); the small models of the
synthetic world use the stem (``docs/benchmarks.md``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn


class ConvStem(nn.Module):
    """``[B, 3, H, W]`` -> tokens ``[B, (H/p)(W/p), C]`` and grid ``(h, w)``.

    ``len(channels)`` resolution steps of 3x3 convolutions (each with
    BatchNorm and ReLU) bring the image down by ``p = 2 ** len(channels)``;
    a 1x1 convolution projects to ``C``; a LayerNorm closes, as on the patch
    projection's tokens. The call matches MMCV's ``PatchEmbed`` (tokens,
    grid), so :class:`~.groupvit.GroupViT` uses either alike.

    Each step has ``convs_per_stride`` convolutions of its width and halves
    the resolution in one of two ways:

    * ``downsample='stride'``: the first convolution has stride 2 (Xiao et
      al.), the others stride 1;
    * ``downsample='maxpool'``: the first convolution runs at the incoming
      resolution (stride 1) and a 2x2 max-pooling follows it, as VGG
      downsamples: every pixel of an outline reaches the first layer, and
      the pooling keeps the strongest edge response of each 2x2 cell where
      a stride-2 convolution sees one position of four. It costs the first
      convolution of each step four times its strided cost.

    Args:
        in_channels: image channels.
        embed_dims: token width C.
        channels: widths of the resolution steps.
        patch_size: p, the total stride; must be ``2 ** len(channels)``.
        convs_per_stride: 3x3 convolutions at each resolution step; more
            see finer outlines before the tokens are formed.
        downsample: ``'stride'`` or ``'maxpool'``, as above.
    """

    DOWNSAMPLES = ('stride', 'maxpool')

    def __init__(
        self,
        in_channels: int,
        embed_dims: int,
        channels: Sequence[int],
        patch_size: int,
        convs_per_stride: int = 1,
        downsample: str = 'stride',
    ):
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels or any(c < 1 for c in channels):
            raise ValueError(
                f'stem_channels={list(channels)} must be one or more '
                'positive widths'
            )
        if 2 ** len(channels) != patch_size:
            raise ValueError(
                f'stem_channels={list(channels)} gives a stride of '
                f'{2 ** len(channels)} but patch_size={patch_size}: use '
                f'{int(math.log2(patch_size)) if patch_size > 0 else "?"} '
                'stride-2 convolutions (patch_size a power of 2)'
            )
        if convs_per_stride < 1:
            raise ValueError(
                f'stem_convs_per_stride={convs_per_stride} must be >= 1'
            )
        if downsample not in self.DOWNSAMPLES:
            raise ValueError(
                f'stem_downsample={downsample!r} must be one of '
                f'{self.DOWNSAMPLES}'
            )
        layers = []
        width = in_channels
        for out in channels:
            for i in range(convs_per_stride):
                stride = 2 if i == 0 and downsample == 'stride' else 1
                layers += [
                    nn.Conv2d(width, out, 3, stride, padding=1, bias=False),
                    nn.BatchNorm2d(out),
                    nn.ReLU(inplace=True),
                ]
                if i == 0 and downsample == 'maxpool':
                    layers.append(nn.MaxPool2d(2))
                width = out
        layers.append(nn.Conv2d(width, embed_dims, 1))
        self.convs = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(embed_dims)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        """Tokens ``[B, h * w, C]`` and the grid ``(h, w)``."""
        grid = self.convs(images)
        hw_shape = tuple(grid.shape[2:])
        return self.norm(grid.flatten(2).transpose(1, 2)), hw_shape
