"""A term against the collapse of grouping: each image should use several
groups (our addition; neither GroupViT nor MixReorg has it).

Measured on the synthetic world (docs/benchmarks.md, issue 8): with the
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

``min_groups`` (per block, or one number for all) turns the usage part into
a floor: with ``m = min_groups`` the usage deficit is
``max(0, log m - H(u_b))``, so an image that already spreads its tokens
over ``m`` or more effective groups (``exp H(u_b) >= m``) is free to leave
the other groups unused. ``min_groups = S`` (the default, None) is the
even-use target above. Even use pushes every image to split into ``S``
equal parts whatever it shows; with few objects the cheapest equal split is
by position (grid cells that cut across objects), which a floor does not
ask for.

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
        blocks: Indices of the grouping blocks it applies to (None: all).
        min_groups: Effective number of groups each image should use at
            least, one int for every block or one per block it applies to
            (None: all of the block's groups, the even-use target).
    """

    def __init__(
        self,
        loss_weight: float = 0.1,
        loss_name: str = 'loss_group_usage',
        blocks: Sequence[int] | None = None,
        min_groups: int | Sequence[int] | None = None,
    ):
        super().__init__(loss_weight, loss_name)
        self.blocks = None if blocks is None else tuple(int(b) for b in blocks)
        if min_groups is not None:
            values = (
                (min_groups,) if isinstance(min_groups, int) else min_groups
            )
            for value in values:
                if isinstance(value, bool) or int(value) != value or value < 1:
                    raise ValueError(
                        f'GroupUsageLoss.min_groups must hold ints >= 1, '
                        f'got {min_groups!r}'
                    )
            if not isinstance(min_groups, int):
                min_groups = tuple(int(v) for v in min_groups)
                if self.blocks is not None and len(min_groups) != len(
                    self.blocks
                ):
                    raise ValueError(
                        f'GroupUsageLoss.min_groups={min_groups} needs one '
                        f'entry per block of blocks={self.blocks}'
                    )
        self.min_groups = min_groups

    def _floor(self, position: int, index: int, groups: int) -> float:
        """``log`` of the usage floor for the ``position``-th chosen block
        (``index`` in the encoder), capped at the block's group count."""
        if self.min_groups is None:
            wanted = groups
        elif isinstance(self.min_groups, int):
            wanted = self.min_groups
        else:
            if position >= len(self.min_groups):
                raise IndexError(
                    f'GroupUsageLoss.min_groups={self.min_groups} has no '
                    f'entry for grouping block {index}'
                )
            wanted = self.min_groups[position]
        return math.log(min(wanted, groups))

    def forward(self, assignments: Sequence[dict]) -> torch.Tensor:
        """``assignments``: the encoder's list of ``{'soft': [B, S, N]}``;
        returns a scalar."""
        chosen = (
            range(len(assignments)) if self.blocks is None else self.blocks
        )
        terms = []
        for position, index in enumerate(chosen):
            if not -len(assignments) <= index < len(assignments):
                raise IndexError(
                    f'GroupUsageLoss.blocks names block {index}, but the '
                    f'encoder has {len(assignments)} grouping blocks'
                )
            soft = assignments[index]['soft']
            groups = soft.shape[1]
            if groups < 2:
                continue
            soft = soft.float()
            usage = soft.mean(dim=2)  # [B, S]
            usage_entropy = _entropy(usage, dim=1)  # [B]
            token_entropy = _entropy(soft, dim=1).mean(dim=1)  # [B]
            floor = self._floor(position, index, groups)
            deficit = (floor - usage_entropy).clamp(min=0) + token_entropy
            terms.append((deficit / math.log(groups)).mean())
        if not terms:
            raise ValueError(
                'GroupUsageLoss: no grouping block with 2 or more groups'
            )
        return self.loss_weight * torch.stack(terms).mean()
