"""Projection heads into the joint image-text embedding space.

GroupViT (Sec. 3.2) projects the image embedding, the final segment tokens
and the text embedding with 2-layer MLPs (hidden 4096, BatchNorm, ReLU) to a
256-d joint space. Under DDP, set ``sync_bn = 'torch'`` in the config so
MMEngine's Runner turns the BatchNorm into SyncBatchNorm, as the reference
does.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from mmseg.registry import MODELS


@MODELS.register_module()
class ProjectionMLP(nn.Module):
    """Two linear layers, BatchNorm + ReLU between them (GroupViT's).

    Accepts ``[..., C_in]`` (any leading dims, e.g. ``[B, C]`` embeddings or
    ``[B, S, C]`` segment tokens); BatchNorm statistics are over all leading
    positions. Returns ``[..., C_out]``.

    Args:
        in_channels: C_in.
        out_channels: C_out (joint space width).
        hidden_channels: width of the hidden layer.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        hidden_channels: int = 4096,
    ):
        super().__init__()
        self.linear_hidden = nn.Sequential(
            nn.Linear(in_channels, hidden_channels),
            nn.BatchNorm1d(hidden_channels),
            nn.ReLU(inplace=True),
        )
        self.linear_out = nn.Linear(hidden_channels, out_channels)
        self.in_channels = in_channels
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_channels:
            raise ValueError(
                f'ProjectionMLP expects {self.in_channels} channels, got '
                f'input of shape {tuple(x.shape)}'
            )
        lead = x.shape[:-1]
        out = self.linear_out(self.linear_hidden(x.reshape(-1, x.shape[-1])))
        return out.reshape(*lead, self.out_channels)
