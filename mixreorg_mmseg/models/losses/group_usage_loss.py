"""A term against the collapse of grouping: each image should use several
groups (our addition; neither GroupViT nor MixReorg has it).

Measured on the synthetic world (docs/benchmarks.md): with the
contrastive losses alone, the hard assignment of both GroupViT and MixReorg
drifts until one group takes almost every token of an image, and nothing
pulls it back, because the pooled image embedding does not depend on how
the tokens are split. This loss rewards an even use of the groups within
each image by tokens that each choose one group clearly: the mutual
information between a token and its group, per image. For every grouping
block's soft assignment ``A`` ``[B, S, N]`` (softmax over the S groups, no
Gumbel noise), the usage of group ``s`` in image ``b`` is ``u_bs = mean_n
A_bsn`` and::

    loss = loss_weight * mean over blocks and images of
           (log S - H(u_b) + mean_n H(A_b:n)) / log S

0 when the groups are used evenly by confident tokens; 1 when one group
takes everything, or when every token hesitates between all groups (a
near-uniform softmax whose test-time argmax sends every token to the same,
slightly favoured group: the collapse measured).

Which tokens share a group is left to the assignment logits
``q(group) . k(token)``: tokens whose features look alike land together, so
the split follows the image's content (an object against its background)
before the text losses give the groups their meaning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from mmseg.registry import MODELS

from .named_loss import NamedLoss


def _entropy(probs: torch.Tensor, dim: int) -> torch.Tensor:
    return -(probs * probs.clamp(min=1e-12).log()).sum(dim=dim)


@MODELS.register_module()
class GroupUsageLoss(NamedLoss):
    """One minus the normalised token-group mutual information, per
    image.

    Args:
        loss_weight: Factor on the loss.
        loss_name: Key in the losses dict.
    """

    def __init__(
        self,
        loss_weight: float = 0.1,
        loss_name: str = 'loss_group_usage',
    ):
        super().__init__(loss_weight, loss_name)

    def forward(self, assignments: Sequence[dict]) -> torch.Tensor:
        """``assignments``: the encoder's list of ``{'soft': [B, S, N]}``;
        returns a scalar."""
        terms = []
        for assignment in assignments:
            soft = assignment['soft']
            groups = soft.shape[1]
            if groups < 2:
                continue
            soft = soft.float()
            usage = soft.mean(dim=2)  # [B, S]
            usage_entropy = _entropy(usage, dim=1)  # [B]
            token_entropy = _entropy(soft, dim=1).mean(dim=1)  # [B]
            # rounding can lift the usage entropy a hair above log S
            usage_deficit = (math.log(groups) - usage_entropy).clamp(min=0)
            deficit = usage_deficit + token_entropy
            terms.append((deficit / math.log(groups)).mean())
        if not terms:
            raise ValueError(
                'GroupUsageLoss: no grouping block with 2 or more groups'
            )
        return self.loss_weight * torch.stack(terms).mean()
