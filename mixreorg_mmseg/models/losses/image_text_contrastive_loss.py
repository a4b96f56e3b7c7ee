"""Symmetric image-text InfoNCE loss (CLIP; GroupViT, Xu et al., CVPR 2022,
Sec. 3.3, Eq. 3-5), on open_clip's ``ClipLoss``.

Distributed training
--------------------
Each rank holds ``B`` pairs of the global batch of ``W * B``. open_clip's
``ClipLoss`` with ``local_loss=True, gather_with_grad=True`` gathers all
ranks' embeddings with ``torch.distributed.nn.all_gather`` and scores the
rank's own ``B`` image rows against all ``W * B`` texts (and its ``B`` text
rows against all images), labels offset by ``rank * B``. Its loss ``L_r`` is
the mean over these local rows, so the global-batch loss is ``L = (1 / W)
sum_r L_r``. The backward of that all-gather sums, over ranks, the
gradients sent to each gathered slice (a reduce-scatter), so the gradient
that reaches rank ``r``'s embeddings is ``d(sum_r' L_r') / d e_r = W dL /
d e_r``, and DDP's averaging of parameter gradients over the ``W`` ranks
divides the ``W`` out: every parameter gets exactly ``dL / d theta`` of the
global batch, while no rank computes the full ``W B x W B`` logits. The
logged value (MMEngine averages it over ranks) is ``L``. All ranks must have
the same ``B`` (``drop_last`` in the sampler), as the all-gather requires.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.dist import get_dist_info
from mmseg.registry import MODELS
from open_clip.loss import ClipLoss

from .named_loss import NamedLoss, check_logit_scale


@MODELS.register_module()
class ImageTextContrastiveLoss(NamedLoss):
    """Symmetric cross-entropy between image and text embeddings.

    ``loss = loss_weight * (CE(s * I T^T, diag) + CE(s * T I^T, diag)) / 2``
    over the global batch, with ``I``, ``T`` the L2-normalised embeddings
    (this loss normalises its inputs, so callers pass raw projections) and
    ``s`` the logit scale. Under DDP see the module docstring.

    Args:
        loss_weight: Factor on the loss.
        loss_name: Key of the loss in the losses dict (must start with
            ``loss_``).
    """

    def __init__(
        self, loss_weight: float = 1.0, loss_name: str = 'loss_contrastive'
    ):
        super().__init__(loss_weight, loss_name)
        # rank and world size are set at each forward: the model is built
        # before (or without) the process group
        self.clip_loss = ClipLoss(local_loss=True, gather_with_grad=True)

    def forward(
        self,
        image_embeds: torch.Tensor,
        text_embeds: torch.Tensor,
        logit_scale: torch.Tensor | float,
    ) -> torch.Tensor:
        """Loss of B matching image-text pairs on this rank.

        Args:
            image_embeds: ``[B, C]``, pair ``i`` with ``text_embeds[i]``.
            text_embeds: ``[B, C]``.
            logit_scale: Scalar ``s`` (the inverse temperature, already
                exponentiated and clamped by the caller).

        Returns:
            Scalar loss.
        """
        if image_embeds.dim() != 2:
            raise ValueError(
                'image_embeds must be [B, C], got shape '
                f'{tuple(image_embeds.shape)}'
            )
        if text_embeds.shape != image_embeds.shape:
            raise ValueError(
                f'text_embeds {tuple(text_embeds.shape)} must have the shape '
                f'of image_embeds {tuple(image_embeds.shape)}'
            )
        check_logit_scale(logit_scale)
        rank, world_size = get_dist_info()
        self.clip_loss.rank = rank
        self.clip_loss.world_size = world_size
        loss = self.clip_loss(
            F.normalize(image_embeds, dim=-1),
            F.normalize(text_embeds, dim=-1),
            logit_scale,
        )
        return self.loss_weight * loss
