"""MixReorg's segmentation loss on mixed images (Cai et al., ICCV 2023,
Sec. 3, Fig. 2: "segmentation loss of the mixed images").

A mixed image holds tokens of several images of its mixing group, and the
mixing plan says which image (so which caption) every token came from: a
segmentation label at no cost. The form chosen here (``docs/method.md``):

1. every final segment ``s`` of mixed image ``b`` is scored against the
   captions of the candidate images ``c`` (its mixing group, or the whole
   batch): ``p(c | s) = softmax_c(scale * cos(z_s, t_c))``;
2. every token ``n`` takes its segments' class distributions through the
   grouping assignments chained over the stages, ``A [B, S, N]`` (columns
   sum to 1; one-hot with the straight-through gradient when ``hard``):
   ``p(c | n) = sum_s A[s, n] p(c | s)``;
3. the loss is the mean over tokens of ``-log p(source(n) | n)``.

So a token is right when the segment the grouping puts it in matches its
own caption best among the captions it could have come from; the gradient
reaches the segment embeddings, the text embeddings and (through ``A``)
the grouping. Tokens, not pixels: the label is constant over a token.
Mixing is local to a rank, so no gather is needed under DDP.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from mmseg.registry import MODELS

from .named_loss import NamedLoss, check_logit_scale


@MODELS.register_module()
class MixedSegmentationLoss(NamedLoss):
    """Token-level caption classification of mixed images.

    Args:
        loss_weight: factor on the loss.
        candidates: ``'group'``: a token chooses among the captions of its
            mixing group (the paper's setting); ``'batch'``: among all
            captions of the local batch (harder negatives).
        loss_name: key in the losses dict (starts with ``loss_``).
    """

    def __init__(
        self,
        loss_weight: float = 1.0,
        candidates: str = 'group',
        loss_name: str = 'loss_mixed_seg',
    ):
        super().__init__(loss_weight, loss_name)
        if candidates not in ('group', 'batch'):
            raise ValueError(
                f"candidates must be 'group' or 'batch', got {candidates!r}"
            )
        self.candidates = candidates

    def token_probabilities(
        self,
        segment_embeds: torch.Tensor,
        token_to_segment: torch.Tensor,
        text_embeds: torch.Tensor,
        same_group: torch.Tensor,
        logit_scale: torch.Tensor | float,
    ) -> torch.Tensor:
        """``p(c | n)`` for every token: ``[B, N, B]`` (zero outside the
        candidates).

        Args:
            segment_embeds: ``[B, S, D]`` projected final segments of the
                mixed images.
            token_to_segment: ``[B, S, N]`` chained assignment.
            text_embeds: ``[B, D]`` caption embeddings of the batch.
            same_group: ``[B, B]`` bool, ``MixingPlan.same_group()``.
            logit_scale: scalar inverse temperature.
        """
        check_logit_scale(logit_scale)
        b, s, _ = segment_embeds.shape
        if token_to_segment.shape[:2] != (b, s):
            raise ValueError(
                f'token_to_segment {tuple(token_to_segment.shape)} must be '
                f'[B, S, N] with B, S = {b}, {s}'
            )
        if text_embeds.shape[0] != b:
            raise ValueError(
                f'{text_embeds.shape[0]} captions for {b} mixed images'
            )
        logits = logit_scale * torch.einsum(
            'bsd,cd->bsc',
            F.normalize(segment_embeds, dim=-1),
            F.normalize(text_embeds, dim=-1),
        )
        if self.candidates == 'group':
            logits = logits.masked_fill(~same_group[:, None, :], float('-inf'))
        segment_probs = logits.softmax(dim=-1)
        return torch.bmm(token_to_segment.transpose(1, 2), segment_probs)

    def forward(
        self,
        segment_embeds: torch.Tensor,
        token_to_segment: torch.Tensor,
        text_embeds: torch.Tensor,
        labels: torch.Tensor,
        same_group: torch.Tensor,
        logit_scale: torch.Tensor | float,
    ) -> torch.Tensor:
        """Mean token NLL of the true source caption.

        Args:
            labels: ``[B, N]`` batch index of each token's source image
                (``MixingPlan.labels()``); the other arguments as in
                :meth:`token_probabilities`.
        """
        probs = self.token_probabilities(
            segment_embeds,
            token_to_segment,
            text_embeds,
            same_group,
            logit_scale,
        )
        return self.loss_from_probabilities(probs, labels)

    def loss_from_probabilities(
        self, probs: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """The loss from :meth:`token_probabilities` ``[B, N, B]`` and the
        source labels ``[B, N]`` (for callers that also use the
        probabilities, e.g. to log the token accuracy)."""
        if labels.shape != probs.shape[:2]:
            raise ValueError(
                f'labels {tuple(labels.shape)} must be [B, N] = '
                f'{tuple(probs.shape[:2])}'
            )
        picked = probs.gather(2, labels.unsqueeze(-1)).squeeze(-1)
        tiny = torch.finfo(picked.dtype).tiny
        return -self.loss_weight * picked.clamp_min(tiny).log().mean()
