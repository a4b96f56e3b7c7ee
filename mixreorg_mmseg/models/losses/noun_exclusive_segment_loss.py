"""Each noun's segment must prefer that noun to the caption's other nouns
(our addition; neither GroupViT nor MixReorg has it).

What it fixes, measured on the synthetic world (docs/benchmarks.md, issue
8): the multi-label loss scored by the best segment
(:class:`.MultiLabelContrastiveLoss` with ``pooling='max'``) spreads an
image's target evenly over *all* of its own nouns, so a segment that looks
like "disc and square" at once satisfies both nouns of "a disc and a
square". Zero-shot inference then gives both segments of such an image the
same class. On the world's held-out shape pairs (combinations no caption
ever named together) this was the largest error: the grouping separated
the two objects, but the second object's segment took the first one's class
(squares read as discs 32% of the time, stars as diamonds 55%).

For every image ``b`` with two or more valid nouns and every one of them,
``k``, take the valid segment ``s*`` that matches ``k`` best; that
segment's scores over the image's *own* nouns are a classification whose
answer is ``k``::

    s*(b, k) = argmax_s  I_{b,s} . P_{b,k}         (valid segments)
    loss = loss_weight * mean over (b, k) of
           - log softmax_{k' in V_b}(t I_{b,s*} . P_{b,k'})_k

``I`` and ``P`` are L2-normalised segment and prompt embeddings ``[B, S,
C]`` / ``[B, K, C]``, ``t`` the logit scale, ``V_b`` the image's valid
prompts. The choice of ``s*`` carries no gradient (as in a max). The loss is
per image, so nothing is gathered under DDP; each rank averages its own
rows and DDP averages the ranks (exact when the ranks have equal row
counts).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from .named_loss import NamedLoss, check_logit_scale, segment_mask


@MODELS.register_module()
class NounExclusiveSegmentLoss(NamedLoss):
    """Cross-entropy over an image's own nouns of each noun's best segment.

    Args:
        loss_weight: Factor on the loss.
        loss_name: Key in the losses dict.
    """

    def __init__(
        self,
        loss_weight: float = 1.0,
        loss_name: str = 'loss_noun_exclusive',
    ):
        super().__init__(loss_weight, loss_name)

    def forward(
        self,
        segment_embeds: torch.Tensor,
        prompt_embeds: torch.Tensor,
        valid: torch.Tensor,
        logit_scale: torch.Tensor | float,
        segment_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss of B images' segments and their own noun prompts.

        Args:
            segment_embeds: ``[B, S, C]`` final segment embeddings.
            prompt_embeds: ``[B, K, C]`` noun prompts of each image (any
                finite values where invalid).
            valid: ``BoolTensor [B, K]``, False at padding prompts.
            logit_scale: scalar ``t`` (already exponentiated).
            segment_valid: ``BoolTensor [B, S]``: the segments that own
                patches (None: all).

        Returns:
            Scalar; 0 (with a graph) when no image has two valid nouns.
        """
        if segment_embeds.dim() != 3 or prompt_embeds.dim() != 3:
            raise ValueError(
                'segment_embeds must be [B, S, C] and prompt_embeds '
                f'[B, K, C], got {tuple(segment_embeds.shape)} and '
                f'{tuple(prompt_embeds.shape)}'
            )
        batch, _, channels = segment_embeds.shape
        if prompt_embeds.shape[0] != batch or (
            prompt_embeds.shape[2] != channels
        ):
            raise ValueError(
                f'prompt_embeds must be [{batch}, K, {channels}] like '
                f'segment_embeds, got {tuple(prompt_embeds.shape)}'
            )
        if valid.dtype != torch.bool or valid.shape != prompt_embeds.shape[:2]:
            raise ValueError(
                f'valid must be a bool tensor [B, K] = '
                f'{tuple(prompt_embeds.shape[:2])}, got {valid.dtype} '
                f'{tuple(valid.shape)}'
            )
        segment_valid = segment_mask(segment_embeds, segment_valid)
        check_logit_scale(logit_scale)
        device = segment_embeds.device
        valid = valid.to(device)
        segments = F.normalize(segment_embeds.float(), dim=-1)
        prompts = F.normalize(prompt_embeds.float(), dim=-1)
        scores = logit_scale * torch.einsum('bsc,bkc->bsk', segments, prompts)
        lowest = torch.finfo(scores.dtype).min
        with torch.no_grad():
            pick = scores.masked_fill(~segment_valid[..., None], lowest)
            best = pick.argmax(dim=1)  # [B, K]
        num_prompts = prompts.shape[1]
        # rows[b, k, k'] = score of noun k's best segment for noun k'
        rows = scores.gather(
            1, best[..., None].expand(batch, num_prompts, num_prompts)
        )
        rows = rows.masked_fill(~valid[:, None, :], lowest)
        targets = torch.arange(num_prompts, device=device).expand(batch, -1)
        ce = F.cross_entropy(
            rows.flatten(0, 1), targets.flatten(), reduction='none'
        ).view(batch, num_prompts)
        used = valid & (valid.sum(dim=1, keepdim=True) >= 2)
        if not used.any():
            return scores.sum() * 0.0
        return self.loss_weight * ce[used].mean()
