"""Cross-attention block: queries attend to a separate set of tokens.

Used by the grouping block (GroupViT Sec. 3.1) to refine the group tokens
on the segment tokens before the assignment.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn.bricks.transformer import FFN


class CrossAttention(nn.Module):
    """Multi-head attention of ``query`` ``[B, S, C]`` over ``key``
    ``[B, N, C]`` through ``F.scaled_dot_product_attention`` (fused kernels
    on every device).

    Args:
        dim: channels C.
        num_heads: heads; must divide ``dim``.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(
                f'num_heads={num_heads} must divide the width {dim}'
            )
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L, C]`` -> ``[B, h, L, C / h]``."""
        b, length, c = x.shape
        return x.view(
            b, length, self.num_heads, c // self.num_heads
        ).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """Returns ``[B, S, C]``."""
        out = F.scaled_dot_product_attention(
            self._heads(self.q_proj(query)),
            self._heads(self.k_proj(key)),
            self._heads(self.v_proj(key)),
        )
        return self.proj(out.transpose(1, 2).flatten(2))


class CrossAttentionBlock(nn.Module):
    """``x = q + attn(q, k)``, ``x = x + mlp(norm(x))``, then a final norm
    (the form of GroupViT's grouping block; its inputs arrive normalised).

    Args:
        dim: channels C.
        num_heads: attention heads.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.norm_post = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FFN(
            embed_dims=dim,
            feedforward_channels=4 * dim,
            act_cfg=dict(type='GELU'),
        )

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """``query`` ``[B, S, C]``, ``key`` ``[B, N, C]`` -> ``[B, S, C]``."""
        x = query + self.attn(query, key)
        x = self.mlp(self.norm2(x), identity=x)
        return self.norm_post(x)
