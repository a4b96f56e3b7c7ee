"""Segment maps snapped to the image's edges: pixel-adaptive refinement.

A ViT's grouping assigns *tokens* (a patch of p x p pixels each) to
segments; resized to the image, the maps blur every outline over a patch
or more. Pixel-adaptive mask refinement (PAMR; Araslanov and Roth, CVPR
2020, Sec. 3.3; TCL, Cho et al., CVPR 2023, refines its zero-shot masks
with it) re-estimates every pixel's map as an average of its neighbours'
maps, weighted by how alike the neighbours' colours are, and repeats: a
segment spreads over pixels that look like it and stops at colour edges.
It has no weights; it only reads the image the model saw.

For pixel ``i`` and neighbour ``j`` (the 8 pixels at distance ``d`` around
``i`` along rows, columns and diagonals, for every ``d`` in ``dilations``):

    k(i, j) = -mean_c |x_ic - x_jc| / (sigma * s_ic)
    w(i, j) = softmax_j k(i, j)
    m_i <- sum_j w(i, j) m_j            (num_iter times)

``s_ic`` is the standard deviation of channel ``c`` over ``i``'s
neighbours: the weights compare colour differences with the local
contrast, so a textured object is not torn apart where a plain one would
be. Pixels beyond the border repeat the border pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS


@MODELS.register_module()
class PixelAdaptiveRefinement(nn.Module):
    """``maps [B, S, H, W]`` refined by the colours of ``image [B, C, H, W]``.

    Args:
        dilations: neighbour distances in pixels (PAMR's: 1, 2, 4, 8, 12,
            24); the largest bounds how far a map can move in one
            iteration.
        num_iter: averaging steps (PAMR's: 10).
        sigma: how sharply colour differences cut the weights, in units of
            the local standard deviation (PAMR's: 0.1).
    """

    def __init__(
        self,
        dilations: Sequence[int] = (1, 2, 4, 8, 12, 24),
        num_iter: int = 10,
        sigma: float = 0.1,
    ):
        super().__init__()
        dilations = tuple(int(d) for d in dilations)
        if not dilations or any(d < 1 for d in dilations):
            raise ValueError(
                f'refine.dilations={list(dilations)} must be one or more '
                'positive pixel distances'
            )
        if num_iter < 1:
            raise ValueError(f'refine.num_iter={num_iter} must be >= 1')
        if not sigma > 0:
            raise ValueError(f'refine.sigma={sigma} must be > 0')
        self.dilations = dilations
        self.num_iter = int(num_iter)
        self.sigma = float(sigma)
        # (dy, dx, pad) of every neighbour, in the order of the weights
        self.offsets = [
            (dy, dx, d)
            for d in dilations
            for dy in (-d, 0, d)
            for dx in (-d, 0, d)
            if dy or dx
        ]

    def neighbours(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, C, K, H, W]``: every pixel's ``K``
        neighbours (border pixels repeated beyond the edge)."""
        h, w = x.shape[-2:]
        padded = {
            d: F.pad(x, (d, d, d, d), mode='replicate') for d in self.dilations
        }
        return torch.stack(
            [
                padded[d][..., d + dy : d + dy + h, d + dx : d + dx + w]
                for dy, dx, d in self.offsets
            ],
            dim=2,
        )

    def weights(self, image: torch.Tensor) -> torch.Tensor:
        """Neighbour weights ``[B, K, H, W]`` (summing to 1 over ``K``)
        from the image ``[B, C, H, W]``."""
        near = self.neighbours(image)
        scale = self.sigma * near.std(dim=2, keepdim=True) + 1e-8
        affinity = -((near - image.unsqueeze(2)).abs() / scale).mean(dim=1)
        return affinity.softmax(dim=1)

    def forward(self, image: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """Refined ``maps`` ``[B, S, H, W]`` (same shape and dtype).

        Raises:
            ValueError: image and maps differ in batch or spatial size.
        """
        if image.ndim != 4 or maps.ndim != 4:
            raise ValueError(
                f'refinement takes image [B, C, H, W] and maps [B, S, H, W], '
                f'got {tuple(image.shape)} and {tuple(maps.shape)}'
            )
        if (
            image.shape[0] != maps.shape[0]
            or image.shape[-2:] != maps.shape[-2:]
        ):
            raise ValueError(
                f'image {tuple(image.shape)} and maps {tuple(maps.shape)} '
                'differ in batch or size: resize the maps to the image first'
            )
        weights = self.weights(image.float())
        h, w = maps.shape[-2:]
        refined = maps.float()
        for _ in range(self.num_iter):
            # one neighbour at a time: [B, S, H, W] in memory, not K of them
            padded = {
                d: F.pad(refined, (d, d, d, d), mode='replicate')
                for d in self.dilations
            }
            step = torch.zeros_like(refined)
            for k, (dy, dx, d) in enumerate(self.offsets):
                step += (
                    weights[:, k : k + 1]
                    * padded[d][..., d + dy : d + dy + h, d + dx : d + dx + w]
                )
            refined = step
        return refined.to(maps.dtype)
