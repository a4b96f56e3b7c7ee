"""GroupViT's multi-label image-text contrastive loss (Xu et al., CVPR 2022,
Sec. 3.3, Eq. 6-8).

Each image is paired with up to K prompts built from the nouns of its
caption (:class:`~mixreorg_mmseg.models.text_encoders.NounPromptBuilder`).
What differs from :class:`.ImageTextContrastiveLoss` (CLIP's InfoNCE):

* image side: each image row is scored against every valid prompt of the
  global batch; its soft target is spread uniformly, ``1 / k_b``, over its
  own ``k_b`` valid prompts (cross-entropy with soft targets);
* text side: each valid prompt row is scored against every image of the
  global batch; its target is its own image;
* padding prompts (``valid`` False) are neither rows nor columns, and an
  image with no valid prompt has no image-side row;
* because the number of rows differs between ranks, each side is averaged
  over the rows of the *global* batch (counted from the gathered ``valid``
  masks), not over the local ones.

**Segment pooling** (``pooling='max'``, our option; GroupViT scores the
pooled image embedding): the image side is the final segments ``[B, S, C]``
and an image's score for a prompt is its best segment's,
``max_s I_{b,s} . P_q`` (segments that own no patch are left out). A noun
is then matched by one segment and an image without the noun must keep
every segment away from it: a multiple-instance reading of the caption's
nouns, which trains exactly what zero-shot inference scores (segments
against class prompts).

Distributed training works as for :class:`.ImageTextContrastiveLoss`: the
embeddings are gathered with gradient (open_clip's ``gather_features``, the
gather of its ``ClipLoss``), the local rows are scored against the gathered
columns with targets offset by ``rank * B``, and rank ``r`` returns ``L_r =
W * (sum of its row losses) / (global row count)`` per side, so that ``(1 /
W) sum_r L_r`` is the global-batch loss ``L`` (what MMEngine logs), the
gathered backward hands rank ``r`` the gradient ``W dL / d e_r``, and DDP's
averaging over ``W`` ranks gives each parameter exactly ``dL / d theta``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather, get_dist_info
from mmseg.registry import MODELS
from open_clip.loss import gather_features

from .named_loss import NamedLoss, check_logit_scale, segment_mask


def _all_gather_mask(mask: torch.Tensor) -> torch.Tensor:
    """Concatenate a boolean mask of every rank along dim 0 (no gradient)."""
    # uint8: not every backend all-gathers bool tensors
    return torch.cat(all_gather(mask.to(torch.uint8).contiguous())).bool()


def _best_segment(
    segments: torch.Tensor, segment_valid: torch.Tensor, texts: torch.Tensor
) -> torch.Tensor:
    """``[B, S, C]`` segments (``[B, S]`` valid) and ``[P, C]`` texts ->
    ``[B, P]``: each image's best valid segment score for each text."""
    scores = torch.einsum('bsc,pc->bsp', segments, texts)
    scores = scores.masked_fill(
        ~segment_valid.to(scores.device)[..., None],
        torch.finfo(scores.dtype).min,
    )
    return scores.max(dim=1).values


@MODELS.register_module()
class MultiLabelContrastiveLoss(NamedLoss):
    """Contrastive loss between images and the noun prompts of their
    captions; embeddings are L2-normalised here.

    ``loss = loss_weight * (L_image + L_text) / 2`` with (over the global
    batch, ``s`` the logit scale, ``I``/``P`` normalised image/prompt
    embeddings, ``V`` the valid prompts, ``V_b`` those of image ``b``)::

        L_image = mean over b with V_b non-empty of
                  - sum_{p in V_b} 1/|V_b| log softmax_{q in V}(s I_b . P_q)_p
        L_text  = mean over p in V of
                  - log softmax_{b'}(s P_p . I_b')_{owner(p)}

    With K = 1 and every prompt valid this is the CLIP loss.

    Args:
        loss_weight: Factor on the loss.
        loss_name: Key of the loss in the losses dict (must start with
            ``loss_``).
        pooling: ``'image'``: ``I_b`` is the image embedding ``[B, C]``
            (GroupViT); ``'max'``: ``I_b . P_q`` is the best of the image's
            segments, ``image_embeds`` is ``[B, S, C]``.
    """

    POOLINGS = ('image', 'max')

    def __init__(
        self,
        loss_weight: float = 1.0,
        loss_name: str = 'loss_multi_label',
        pooling: str = 'image',
    ):
        super().__init__(loss_weight, loss_name)
        if pooling not in self.POOLINGS:
            raise ValueError(
                f'MultiLabelContrastiveLoss.pooling must be one of '
                f'{self.POOLINGS}, got {pooling!r}'
            )
        self.pooling = pooling

    @property
    def uses_segments(self) -> bool:
        """Whether ``forward`` takes segments ``[B, S, C]``."""
        return self.pooling == 'max'

    def forward(
        self,
        image_embeds: torch.Tensor,
        prompt_embeds: torch.Tensor,
        valid: torch.Tensor,
        logit_scale: torch.Tensor | float,
        segment_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss of B images and their K prompts on this rank.

        Args:
            image_embeds: ``[B, C]``; ``[B, S, C]`` segments with
                ``pooling='max'``.
            prompt_embeds: ``[B, K, C]``; prompt ``k`` of image ``b``.
                Padding prompts may hold any finite values (zeros).
            valid: ``BoolTensor [B, K]``, False at padding prompts.
            logit_scale: Scalar ``s`` (already exponentiated and clamped).
            segment_valid: ``BoolTensor [B, S]`` (``pooling='max'``): the
                segments that own patches; None: all of them.

        Returns:
            Scalar loss; 0 (with a graph) when no prompt of the global batch
            is valid.
        """
        want = 3 if self.uses_segments else 2
        if image_embeds.dim() != want:
            raise ValueError(
                f'image_embeds must be {["[B, C]", "[B, S, C]"][want - 2]} '
                f'with pooling={self.pooling!r}, got shape '
                f'{tuple(image_embeds.shape)}'
            )
        batch, channels = image_embeds.shape[0], image_embeds.shape[-1]
        if self.uses_segments:
            segment_valid = segment_mask(image_embeds, segment_valid)
        if prompt_embeds.dim() != 3 or (
            prompt_embeds.shape[0],
            prompt_embeds.shape[2],
        ) != (batch, channels):
            raise ValueError(
                f'prompt_embeds must be [B, K, C] = [{batch}, K, {channels}] '
                f'like image_embeds, got {tuple(prompt_embeds.shape)}'
            )
        num_prompts = prompt_embeds.shape[1]
        if num_prompts == 0:
            raise ValueError('prompt_embeds has K = 0 prompts per image')
        if valid.dtype != torch.bool:
            raise TypeError(f'valid must be a bool tensor, got {valid.dtype}')
        if valid.shape != prompt_embeds.shape[:2]:
            raise ValueError(
                f'valid must be [B, K] = {tuple(prompt_embeds.shape[:2])}, '
                f'got {tuple(valid.shape)}'
            )
        check_logit_scale(logit_scale)
        device = image_embeds.device
        valid = valid.to(device)

        images = F.normalize(image_embeds, dim=-1)
        prompts = F.normalize(prompt_embeds, dim=-1).reshape(-1, channels)
        valid_flat = valid.reshape(-1)
        rank, world_size = get_dist_info()
        if world_size > 1:
            all_images, all_prompts = gather_features(
                images,
                prompts,
                local_loss=True,
                gather_with_grad=True,
                rank=rank,
                world_size=world_size,
            )
            all_valid = _all_gather_mask(valid_flat)
            if self.uses_segments:
                all_segment_valid = _all_gather_mask(segment_valid)
        else:
            all_images, all_prompts, all_valid = images, prompts, valid_flat
            all_segment_valid = segment_valid

        # global index of the image each prompt belongs to: [W * B * K]
        owner = torch.arange(world_size * batch, device=device)
        owner = owner.repeat_interleave(num_prompts)
        local_images = torch.arange(batch, device=device) + rank * batch
        local_owner = owner[rank * batch * num_prompts :][
            : batch * num_prompts
        ]

        # image side: [B, W * B * K], padding columns masked out; the
        # finite fill keeps rows finite when no column is valid
        if self.uses_segments:
            logits = logit_scale * _best_segment(
                images, segment_valid, all_prompts
            )
        else:
            logits = logit_scale * images @ all_prompts.t()
        logits = logits.masked_fill(
            ~all_valid[None], torch.finfo(logits.dtype).min
        )
        targets = (owner[None] == local_images[:, None]) & all_valid[None]
        targets = targets.to(logits.dtype)
        targets = targets / targets.sum(-1, keepdim=True).clamp(min=1)
        image_sum = -(targets * logits.log_softmax(-1)).sum()
        image_rows_global = all_valid.view(-1, num_prompts).any(-1).sum()

        # text side: [B * K, W * B], padding rows weighted 0
        if self.uses_segments:
            logits = (
                logit_scale
                * _best_segment(all_images, all_segment_valid, prompts).t()
            )
        else:
            logits = logit_scale * prompts @ all_images.t()
        text_rows = F.cross_entropy(logits, local_owner, reduction='none')
        text_sum = (text_rows * valid_flat.to(text_rows.dtype)).sum()

        text_rows_global = all_valid.sum()
        loss = (
            0.5
            * world_size
            * (
                image_sum / image_rows_global.clamp(min=1)
                + text_sum / text_rows_global.clamp(min=1)
            )
        )
        return self.loss_weight * loss
