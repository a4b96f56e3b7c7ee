"""What every loss of this package shares: a weight and a name.

MMSeg's segmentors return a dict of losses and sum the entries whose key
starts with ``loss_``; a loss here carries its key (``loss_name``) so that
configs can rename it (two contrastive losses side by side in MixReorg)
and its weight (``loss_weight``).
"""

from __future__ import annotations

import torch
from torch import nn


def check_loss_name(loss_name: str) -> str:
    """MMSeg sums the outputs whose names start with ``loss_``; any other
    name would be logged and silently left out of the backward pass."""
    if not isinstance(loss_name, str) or not loss_name.startswith('loss_'):
        raise ValueError(
            f"loss_name must start with 'loss_' (MMSeg adds only those to "
            f'the total loss), got {loss_name!r}'
        )
    return loss_name


def check_logit_scale(logit_scale: torch.Tensor | float) -> None:
    """The temperature must be one number (already exponentiated)."""
    if isinstance(logit_scale, torch.Tensor) and logit_scale.numel() != 1:
        raise ValueError(
            'logit_scale must be a scalar, got shape '
            f'{tuple(logit_scale.shape)}'
        )


def segment_mask(
    segments: torch.Tensor, segment_valid: torch.Tensor | None
) -> torch.Tensor:
    """``BoolTensor [B, S]`` of the segments ``[B, S, C]`` that take part:
    ``segment_valid`` after checking its shape, or all of them (None)."""
    if segment_valid is None:
        return segments.new_ones(segments.shape[:2], dtype=torch.bool)
    if segment_valid.shape != segments.shape[:2]:
        raise ValueError(
            f'segment_valid must be [B, S] = {tuple(segments.shape[:2])}, '
            f'got {tuple(segment_valid.shape)}'
        )
    return segment_valid.to(segments.device)


class NamedLoss(nn.Module):
    """Base of the losses: ``loss_weight`` and a checked ``loss_name``.

    Args:
        loss_weight: factor on the loss.
        loss_name: key of the loss in the losses dict (starts with
            ``loss_``).
    """

    def __init__(self, loss_weight: float, loss_name: str):
        super().__init__()
        self.loss_weight = float(loss_weight)
        self._loss_name = check_loss_name(loss_name)

    @property
    def loss_name(self) -> str:
        """Key of this loss in the losses dict."""
        return self._loss_name
