"""GroupViT's grouping block: group tokens take over the segment tokens.

Implements the grouping block of GroupViT (Xu et al., CVPR 2022, Sec. 3.1,
Fig. 2), which MixReorg keeps unchanged (MixReorg Fig. 2: every branch goes
through "GroupViT's two-stage grouping blocks"):

1. the group tokens of the stage are remixed across the token axis by an
   MLP (``S_in -> S_out`` groups) and refined by cross-attention to the
   stage's segment tokens;
2. every segment token is assigned to one group: a softmax over the *group*
   axis, with Gumbel noise and made one-hot with the straight-through
   estimator while training, a plain argmax at test time;
3. each group's new token is its projected group token plus the average of
   the values of the segment tokens assigned to it, then an MLP.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.transformer import FFN

from .cross_attention_block import CrossAttentionBlock


class TokenMixingMlp(nn.Module):
    """A two-layer MLP over the token axis: ``[B, S_in, C] -> [B, S_out, C]``.

    Args:
        in_tokens: S_in.
        hidden_tokens: width of the hidden layer.
        out_tokens: S_out.
    """

    def __init__(self, in_tokens: int, hidden_tokens: int, out_tokens: int):
        super().__init__()
        self.fc1 = nn.Linear(in_tokens, hidden_tokens)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_tokens, out_tokens)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens``: ``[B, S_in, C]``; returns ``[B, S_out, C]``."""
        mixed = self.fc2(self.act(self.fc1(tokens.transpose(1, 2))))
        return mixed.transpose(1, 2)


def sample_gumbel_like(logits: torch.Tensor) -> torch.Tensor:
    """Gumbel(0, 1) noise of ``logits``' shape, dtype and device.

    Drawn as ``-log(-log(U))`` with ``U`` kept inside ``(0, 1)``, so the noise
    is always finite (``exponential_()`` can return exactly 0 and give
    ``inf``, which turns the softmax into NaN).
    """
    tiny = torch.finfo(logits.dtype).tiny
    uniform = torch.rand_like(logits).clamp_(tiny, 1.0 - 1e-7)
    return -torch.log(-torch.log(uniform))


def straight_through_one_hot(probs: torch.Tensor, dim: int) -> torch.Tensor:
    """One-hot of ``probs.argmax(dim)`` in the forward pass whose gradient is
    the gradient of ``probs`` (straight-through estimator)."""
    index = probs.argmax(dim=dim, keepdim=True)
    hard = torch.zeros_like(probs).scatter_(dim, index, 1.0)
    return hard - probs.detach() + probs


class GroupAssignment(nn.Module):
    """Assignment of segment tokens to groups, and the groups' new features.

    ``logits = q(groups) k(segments)^T / sqrt(C)``: ``[B, S, N]``; the
    assignment is a distribution over the S groups for each of the N segment
    tokens (softmax over dim 1).

    Args:
        dim: channels C.
        hard: one-hot assignment (straight-through) with Gumbel noise
            (temperature 1) while training, as GroupViT; False keeps it
            soft and noise-free.

    Each group's total assignment gets 1 added before the average (as in
    GroupViT), so an empty group gathers ~0, not NaN.
    """

    def __init__(self, dim: int, hard: bool = True):
        super().__init__()
        self.hard = hard
        self.scale = dim**-0.5
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def assign(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` ``[B, S, N]`` -> assignment ``[B, S, N]`` whose columns
        sum to 1 (one-hot when ``hard``)."""
        if self.hard and self.training:
            logits = logits + sample_gumbel_like(logits)
        probs = F.softmax(logits, dim=1)
        if self.hard:
            return straight_through_one_hot(probs, dim=1)
        return probs

    def forward(
        self, groups: torch.Tensor, segments: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Gather segment tokens into groups.

        Args:
            groups: ``[B, S, C]`` group tokens (queries).
            segments: ``[B, N, C]`` segment tokens (keys and values).

        Returns:
            ``[B, S, C]`` group features, and the assignments ``soft``
            (softmax over groups without noise: what zero-shot inference
            chains; differentiable) and ``hard`` (what was used), both
            ``[B, S, N]``.
        """
        logits = torch.bmm(
            self.q_proj(groups), self.k_proj(segments).transpose(1, 2)
        )
        logits = logits * self.scale
        used = self.assign(logits)
        soft = F.softmax(logits, dim=1)
        weights = used / (used.sum(dim=2, keepdim=True) + 1.0)
        out = self.proj(torch.bmm(weights, self.v_proj(segments)))
        return out, dict(soft=soft, hard=used)


class GroupingBlock(nn.Module):
    """Merge ``N`` segment tokens into ``S_out`` new segment tokens.

    Args:
        dim: channels C.
        num_heads: heads of the cross-attention before the assignment.
        num_group_tokens: S_in, group tokens of the stage.
        num_output_groups: S_out, segments after the block.
        hard: see :class:`GroupAssignment`.

    The token-mixing MLP is ``C / 2`` wide and the channel MLP ``4 C``, as
    in GroupViT.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_group_tokens: int,
        num_output_groups: int,
        hard: bool = True,
    ):
        super().__init__()
        self.num_output_groups = num_output_groups
        self.norm_tokens = nn.LayerNorm(dim)
        self.mlp_inter = TokenMixingMlp(
            num_group_tokens, dim // 2, num_output_groups
        )
        self.norm_post_tokens = nn.LayerNorm(dim)
        self.norm_x = nn.LayerNorm(dim)
        self.pre_assign_attn = CrossAttentionBlock(dim, num_heads)
        self.assign = GroupAssignment(dim, hard=hard)
        self.norm_new_x = nn.LayerNorm(dim)
        self.mlp_channels = FFN(
            embed_dims=dim,
            feedforward_channels=4 * dim,
            act_cfg=dict(type='GELU'),
        )

    def forward(
        self, segments: torch.Tensor, group_tokens: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Group ``segments`` with ``group_tokens``.

        Args:
            segments: ``[B, N, C]`` segment (image) tokens of the stage.
            group_tokens: ``[B, S_in, C]`` group tokens after the stage's
                transformer layers.

        Returns:
            new segment tokens ``[B, S_out, C]`` and the assignment dict
            (``soft``, ``hard``: ``[B, S_out, N]``).
        """
        segments = self.norm_x(segments)
        groups = self.norm_post_tokens(
            self.mlp_inter(self.norm_tokens(group_tokens))
        )
        groups = self.pre_assign_attn(groups, segments)
        gathered, assignment = self.assign(groups, segments)
        new_segments = gathered + groups
        new_segments = self.mlp_channels(
            self.norm_new_x(new_segments), identity=new_segments
        )
        return new_segments, assignment
