"""Progressive mixing (MixReorg Sec. 3, Fig. 2 (b)).

After the tokens are mixed, the features of the original images feed
global information of each token's own source image back into the mixed
features. Choice made here: every mixed token cross-attends to all tokens
of its source image (original branch, same depth), before each transformer
layer of the progressive stage, added as a residual whose output
projection starts at zero (the block starts as the identity).

Because a token only attends to its own source image, the attention is
computed in the source images' layout: restore the mixed tokens (each image
gets its own tokens back), attend ``[B, N, C]`` to ``[B, N, C]`` with no
mask, and mix the update with the same plan. That is exactly the per-token
masked attention over the batch, at the cost of plain self-attention.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..backbones.cross_attention_block import CrossAttention
from .mixing_plan import MixingPlan


class ProgressiveMixingBlock(nn.Module):
    """``mixed += mix(attn(norm(restore(mixed)), norm(original)))``.

    Args:
        dim: channels C.
        num_heads: attention heads.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.norm_mixed = nn.LayerNorm(dim)
        self.norm_original = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, num_heads)
        nn.init.zeros_(self.attn.proj.weight)
        nn.init.zeros_(self.attn.proj.bias)

    def forward(
        self,
        mixed: torch.Tensor,
        original: torch.Tensor,
        plan: MixingPlan,
    ) -> torch.Tensor:
        """``mixed``, ``original``: ``[B, N, C]`` patch tokens of the mixed
        and original images; returns the updated mixed tokens."""
        in_source_layout = plan.restore(mixed)
        update = self.attn(
            self.norm_mixed(in_source_layout), self.norm_original(original)
        )
        return mixed + plan.mix(update)
