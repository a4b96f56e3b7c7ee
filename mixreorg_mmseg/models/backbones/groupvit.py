"""GroupViT image encoder (Xu et al., CVPR 2022, Sec. 3.1, Fig. 2).

The encoder MixReorg builds on (MixReorg Sec. 3, Fig. 2): a ViT whose
transformer layers are split into stages; learnable group tokens join the
tokens of a stage, and a :class:`~.grouping_block.GroupingBlock` at the end
of the stage merges the segment tokens into as many segments as it has
groups. The reference setting (ViT-S) is ``embed_dims=384``, 6 heads,
depths ``(6, 3, 3)``, group tokens ``(64, 8, 0)``, segments ``(64, 8)``.

Data flow for an image batch ``[B, 3, H, W]`` with patch ``p``::

    patch_embed -> N = (H/p)(W/p) tokens [B, N, C] + pos_embed
    stage i:  cat(segments, group tokens) -> transformer layers
              -> split -> grouping block -> [B, S_i, C], assignment_i
    last stage: transformer layers on [B, S_last, C] -> LayerNorm
    image_embed = mean over segments: [B, C]
    segment_readout='patch' (our option): the final segment tokens are
    read out of the patch embeddings each segment owns instead
    (read_out_segments: [B, N, C] patches -> [B, S_last, C])

The same flow as four public steps, which :meth:`GroupViT.forward` chains
and MixReorg's mixer interleaves with its mixing (it runs the first stage's
layers in two parts and groups three branches at once)::

    embed(images)                        -> tokens, hw_shape, patches
    first_stage_group_tokens(B)          -> group tokens [B, G_1, C]
    run_first_stage(cat(tokens, groups), start, end)
                                         -> [B, N + G_1, C]
    group_first_stage(tokens, groups)    -> segments [B, S_1, C], assignment
    encode_later_stages(segments, groups, [assignment], hw_shape, patches)
                                         -> GroupViTOutput
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks.transformer import FFN, PatchEmbed
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models.backbones.vision_transformer import (
    TransformerEncoderLayer,
)
from mmseg.registry import MODELS

from .conv_stem import ConvStem
from .grouping_block import GroupingBlock, TokenMixingMlp


@dataclass
class GroupViTOutput:
    """What training and zero-shot inference need from the encoder.

    Attributes:
        image_embed: ``[B, C]`` pooled image embedding (mean of the final
            segment tokens).
        segment_tokens: ``[B, S, C]`` final segment tokens (normalised);
            with ``segment_readout='patch'`` read out of the patch
            embeddings (:meth:`GroupViT.read_out_segments`).
        assignments: one dict per grouping block, ``soft`` and ``hard``
            ``[B, S_i, N_i]``: segment ``n`` of the block's input belongs to
            group ``s`` (columns sum to 1); ``N_1`` is the patch count.
        hw_shape: ``(h, w)`` of the patch grid.
    """

    image_embed: torch.Tensor
    segment_tokens: torch.Tensor
    assignments: list[dict[str, torch.Tensor]]
    hw_shape: tuple[int, int]


def chain_assignments(
    assignments: Sequence[dict[str, torch.Tensor]],
    hw_shape: tuple[int, int],
    kind: str = 'soft',
    out_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Trace every patch to the final segments through all grouping stages.

    GroupViT's zero-shot inference (Sec. 3.3): the assignment matrices are
    multiplied, ``A_last @ ... @ A_1``, giving for each patch a distribution
    over the final segments, then resized to the image (bilinear).

    Args:
        assignments: the encoder's ``assignments`` (``[B, S_i, N_i]``).
        hw_shape: patch grid ``(h, w)``, ``h * w == N_1``.
        kind: ``'soft'`` or ``'hard'``.
        out_size: ``(H, W)`` to resize to; None keeps the patch grid.

    Returns:
        ``[B, S_last, H, W]``.
    """
    if not assignments:
        raise ValueError('chain_assignments needs at least one assignment')
    chained = assignments[0][kind]
    for assignment in assignments[1:]:
        chained = torch.bmm(assignment[kind], chained)
    b, s, n = chained.shape
    h, w = hw_shape
    if h * w != n:
        raise ValueError(f'hw_shape {hw_shape} does not hold {n} patches')
    maps = chained.reshape(b, s, h, w)
    if out_size is not None and tuple(out_size) != (h, w):
        maps = F.interpolate(
            maps, size=out_size, mode='bilinear', align_corners=False
        )
    return maps


class GroupingStage(nn.Module):
    """Transformer layers over ``cat(segments, group tokens)``, then
    (except in the last stage) a grouping block.

    Args:
        dim: channels C.
        depth: transformer layers.
        num_heads: attention heads.
        num_group_tokens: learnable group tokens of this stage (0: none).
        num_prev_group_tokens: group tokens of the previous stage; when both
            are > 0 this stage's tokens are its learnable tokens (zero
            initialised) plus a token-mixing projection of the previous
            stage's group tokens, as GroupViT does.
        num_output_groups: segments after the grouping block (None: no
            grouping block, the last stage).
        drop_path_rates: one stochastic-depth rate per layer.
        hard_assignment: see :class:`GroupingBlock`.
        with_cp: gradient checkpointing of the transformer layers.

    The transformer layers are ViT's (MLP ``4 C`` wide, attention biases,
    no dropout).
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        num_group_tokens: int,
        num_prev_group_tokens: int,
        num_output_groups: int | None,
        drop_path_rates: Sequence[float],
        hard_assignment: bool = True,
        with_cp: bool = False,
    ):
        super().__init__()
        self.num_group_tokens = num_group_tokens
        self.with_cp = with_cp
        if num_group_tokens > 0:
            self.group_token = nn.Parameter(
                torch.zeros(1, num_group_tokens, dim)
            )
        else:
            self.register_parameter('group_token', None)
        if num_group_tokens > 0 and num_prev_group_tokens > 0:
            self.group_projector = nn.Sequential(
                nn.LayerNorm(dim),
                TokenMixingMlp(
                    num_prev_group_tokens, dim // 2, num_group_tokens
                ),
            )
        else:
            self.group_projector = None
        self.blocks = nn.ModuleList(
            TransformerEncoderLayer(
                embed_dims=dim,
                num_heads=num_heads,
                feedforward_channels=4 * dim,
                drop_path_rate=rate,
            )
            for rate in drop_path_rates
        )
        if num_output_groups is None:
            self.downsample = None
        else:
            self.downsample = GroupingBlock(
                dim=dim,
                num_heads=num_heads,
                num_group_tokens=num_group_tokens,
                num_output_groups=num_output_groups,
                hard=hard_assignment,
            )

    def initial_group_tokens(
        self, batch_size: int, prev_group_tokens: torch.Tensor | None
    ) -> torch.Tensor | None:
        """``[B, S, C]`` group tokens that join the stage (None if none)."""
        if self.group_token is None:
            return None
        tokens = self.group_token.expand(batch_size, -1, -1)
        if self.group_projector is not None:
            tokens = tokens + self.group_projector(prev_group_tokens)
        return tokens

    def run_layers(
        self, tokens: torch.Tensor, start: int = 0, end: int | None = None
    ) -> torch.Tensor:
        """Transformer layers ``start:end`` on ``tokens`` ``[B, L, C]``."""
        for layer in self.blocks[start:end]:
            if self.with_cp and tokens.requires_grad:
                tokens = cp.checkpoint(layer, tokens, use_reentrant=False)
            else:
                tokens = layer(tokens)
        return tokens

    def forward(
        self,
        segments: torch.Tensor,
        prev_group_tokens: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict | None]:
        """One stage.

        Args:
            segments: ``[B, N, C]``.
            prev_group_tokens: ``[B, S_prev, C]`` from the previous stage.

        Returns:
            new segments (``[B, S_out, C]``, or ``[B, N, C]`` in the last
            stage), this stage's group tokens after its layers
            (``[B, S_in, C]`` or None), and the assignment dict (or None).
        """
        group_tokens = self.initial_group_tokens(
            segments.shape[0], prev_group_tokens
        )
        if group_tokens is None:
            return self.run_layers(segments), None, None
        tokens = self.run_layers(torch.cat([segments, group_tokens], dim=1))
        num_segments = segments.shape[1]
        segments = tokens[:, :num_segments]
        group_tokens = tokens[:, num_segments:]
        if self.downsample is None:
            return segments, group_tokens, None
        segments, assignment = self.downsample(segments, group_tokens)
        return segments, group_tokens, assignment


def _as_tuple(value, name: str) -> tuple:
    if isinstance(value, int):
        raise ValueError(f'GroupViT: {name} must be a list, one per stage')
    return tuple(value)


@MODELS.register_module()
class GroupViT(BaseModule):
    """GroupViT image encoder.

    Args:
        img_size: training image size (int or ``(H, W)``); fixes the size
            of the learnable position embedding, which is resized
            (bicubic) for other input sizes.
        patch_size: patch size p; must divide ``img_size``.
        in_channels: image channels.
        embed_dims: width C of every stage.
        depths: transformer layers per stage.
        num_heads: attention heads per stage (each must divide C).
        num_group_tokens: group tokens per stage; > 0 for every stage but
            the last, 0 for the last.
        num_output_groups: segments produced by each grouping block (one per
            stage but the last).
        drop_path_rate: stochastic depth, rising linearly over all layers.
        hard_assignment: one-hot (straight-through) assignment with Gumbel
            noise while training (GroupViT's); False keeps soft
            assignments without noise.
        segment_readout: what the final segment tokens (those zero-shot
            inference scores against class prompts) are made of.
            ``'group'``: the last stage's tokens (GroupViT). ``'patch'``
            (our option): each final segment is the average of the patch
            embeddings it owns through the chained hard assignments
            (before position embedding and any attention), through a
            readout MLP; the image embedding stays the mean of the last
            stage's tokens. Only the grouping then decides what a segment
            is made of, and no context of the rest of the image reaches its
            embedding (docs/benchmarks.md).
        with_cp: gradient checkpointing of the transformer layers.
        stem_channels: None: the patch projection (one stride-p
            convolution, GroupViT's). A list of widths: a
            :class:`~.conv_stem.ConvStem` of that many stride-2
            convolutions instead (``2 ** len == patch_size``), which makes
            small models learn much faster from little data.
        stem_convs_per_stride: 3x3 convolutions of the stem at each
            resolution (``stem_channels`` only).
        stem_downsample: how the stem halves the resolution: ``'stride'``
            (its first convolution at each resolution has stride 2) or
            ``'maxpool'`` (that convolution at stride 1, then 2x2
            max-pooling; ``stem_channels`` only).
        init_cfg: MMEngine init config (e.g. ``Pretrained``).
    """

    READOUTS = ('group', 'patch')

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        patch_size: int = 16,
        in_channels: int = 3,
        embed_dims: int = 384,
        depths: Sequence[int] = (6, 3, 3),
        num_heads: Sequence[int] = (6, 6, 6),
        num_group_tokens: Sequence[int] = (64, 8, 0),
        num_output_groups: Sequence[int] = (64, 8),
        drop_path_rate: float = 0.1,
        hard_assignment: bool = True,
        with_cp: bool = False,
        stem_channels: Sequence[int] | None = None,
        stem_convs_per_stride: int = 1,
        stem_downsample: str = 'stride',
        segment_readout: str = 'group',
        init_cfg: dict | None = None,
    ):
        super().__init__(init_cfg=init_cfg)
        img_size = (
            (img_size, img_size) if isinstance(img_size, int) else img_size
        )
        depths = _as_tuple(depths, 'depths')
        num_heads = _as_tuple(num_heads, 'num_heads')
        num_group_tokens = _as_tuple(num_group_tokens, 'num_group_tokens')
        num_output_groups = _as_tuple(num_output_groups, 'num_output_groups')
        self._check_sizes(
            img_size,
            patch_size,
            embed_dims,
            depths,
            num_heads,
            num_group_tokens,
            num_output_groups,
            drop_path_rate,
        )
        self.img_size = tuple(img_size)
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.stem_channels = (
            None if stem_channels is None else tuple(stem_channels)
        )
        self.hard_assignment = hard_assignment
        self.embed_dims = embed_dims
        self.depths = depths
        self.num_heads = num_heads
        self.num_group_tokens = num_group_tokens
        self.num_output_groups = num_output_groups
        self.patch_grid = (
            img_size[0] // patch_size,
            img_size[1] // patch_size,
        )

        if stem_channels is None and stem_convs_per_stride != 1:
            raise ValueError(
                f'stem_convs_per_stride={stem_convs_per_stride} needs a '
                'convolutional stem: set stem_channels'
            )
        if stem_channels is None and stem_downsample != 'stride':
            raise ValueError(
                f'stem_downsample={stem_downsample!r} needs a '
                'convolutional stem: set stem_channels'
            )
        if stem_channels is None:
            self.patch_embed = PatchEmbed(
                in_channels=in_channels,
                embed_dims=embed_dims,
                kernel_size=patch_size,
                stride=patch_size,
                padding=0,
                norm_cfg=dict(type='LN'),
            )
        else:
            self.patch_embed = ConvStem(
                in_channels,
                embed_dims,
                stem_channels,
                patch_size,
                stem_convs_per_stride,
                stem_downsample,
            )
        self.pos_embed = nn.Parameter(
            torch.zeros(1, self.patch_grid[0] * self.patch_grid[1], embed_dims)
        )

        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            last = i == len(depths) - 1
            self.layers.append(
                GroupingStage(
                    dim=embed_dims,
                    depth=depth,
                    num_heads=num_heads[i],
                    num_group_tokens=num_group_tokens[i],
                    num_prev_group_tokens=num_group_tokens[i - 1] if i else 0,
                    num_output_groups=None if last else num_output_groups[i],
                    drop_path_rates=rates[
                        sum(depths[:i]) : sum(depths[: i + 1])
                    ],
                    hard_assignment=hard_assignment,
                    with_cp=with_cp,
                )
            )
        self.norm = nn.LayerNorm(embed_dims)
        if segment_readout not in self.READOUTS:
            raise ValueError(
                f'GroupViT config: segment_readout must be one of '
                f'{self.READOUTS}, got {segment_readout!r}'
            )
        self.segment_readout = segment_readout
        if segment_readout == 'patch':
            self.readout_norm = nn.LayerNorm(embed_dims)
            self.readout_mlp = FFN(
                embed_dims=embed_dims,
                feedforward_channels=4 * embed_dims,
                act_cfg=dict(type='GELU'),
            )
        self._init_from_scratch()

    @staticmethod
    def _check_sizes(
        img_size,
        patch_size,
        embed_dims,
        depths,
        num_heads,
        num_group_tokens,
        num_output_groups,
        drop_path_rate,
    ) -> None:
        """Fail at build time, naming the key, when sizes do not fit."""

        def fail(msg: str):
            raise ValueError(f'GroupViT config: {msg}')

        if len(img_size) != 2:
            fail(f'img_size must be an int or (H, W), got {img_size}')
        for side in img_size:
            if side % patch_size:
                fail(
                    f'patch_size={patch_size} must divide img_size={img_size}'
                )
        stages = len(depths)
        if stages < 2:
            fail(f'depths={depths}: GroupViT needs at least two stages')
        if any(d < 1 for d in depths):
            fail(f'depths={depths}: every stage needs >= 1 layer')
        for key, value, want in (
            ('num_heads', num_heads, stages),
            ('num_group_tokens', num_group_tokens, stages),
            ('num_output_groups', num_output_groups, stages - 1),
        ):
            if len(value) != want:
                fail(
                    f'len({key})={len(value)} but depths={depths} has '
                    f'{stages} stages: {key} needs {want} entries'
                )
        for heads in num_heads:
            if heads < 1 or embed_dims % heads:
                fail(
                    f'num_heads={num_heads}: each must divide '
                    f'embed_dims={embed_dims}'
                )
        if any(g < 1 for g in num_group_tokens[:-1]):
            fail(
                f'num_group_tokens={num_group_tokens}: every stage but the '
                'last needs group tokens for its grouping block'
            )
        if num_group_tokens[-1] != 0:
            fail(
                f'num_group_tokens={num_group_tokens}: the last stage has no '
                'grouping block, so its entry must be 0'
            )
        if any(s < 1 for s in num_output_groups):
            fail(f'num_output_groups={num_output_groups} must be >= 1')
        if not 0.0 <= drop_path_rate < 1.0:
            fail(f'drop_path_rate={drop_path_rate} must be in [0, 1)')

    def _init_from_scratch(self) -> None:
        """Truncated normal (std 0.02) for linear layers, position embedding
        and the first stage's group tokens; unit LayerNorms; zero biases.
        Group tokens that get a projection of the previous stage's tokens
        start at zero."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        trunc_normal_(self.pos_embed, std=0.02)
        for stage in self.layers:
            if stage.group_token is not None:
                if stage.group_projector is None:
                    trunc_normal_(stage.group_token, std=0.02)
                else:
                    nn.init.zeros_(stage.group_token)

    def init_weights(self) -> None:
        """From ``init_cfg`` when it names weights, else from scratch (the
        children's own ``init_weights`` would re-draw their MLPs)."""
        if self.init_cfg is not None:
            super().init_weights()
        else:
            self._init_from_scratch()
            self._is_init = True

    def position_embedding(self, hw_shape: tuple[int, int]) -> torch.Tensor:
        """``[1, h * w, C]``, resized (bicubic) from the training grid."""
        if tuple(hw_shape) == self.patch_grid:
            return self.pos_embed
        gh, gw = self.patch_grid
        grid = self.pos_embed.reshape(1, gh, gw, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(
            grid, size=hw_shape, mode='bicubic', align_corners=False
        )
        return grid.flatten(2).transpose(1, 2)

    def embed(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor, tuple, torch.Tensor]:
        """Patch tokens with position: ``[B, 3, H, W]`` -> ``[B, N, C]``,
        the grid ``(h, w)``, and the patch embeddings before position
        embedding ``[B, N, C]`` (what ``segment_readout='patch'`` reads
        out)."""
        patches, hw_shape = self.patch_embed(images)
        tokens = patches + self.position_embedding(hw_shape)
        return tokens, tuple(hw_shape), patches

    def read_out_segments(
        self,
        patches: torch.Tensor,
        assignments: Sequence[dict],
        hw_shape: tuple[int, int],
    ) -> torch.Tensor:
        """``segment_readout='patch'``: the final segments' tokens from the
        patch embeddings ``[B, N, C]`` -> ``[B, S, C]`` (normalised).

        Each segment averages the patches the chained *hard* assignments
        give it (straight-through while training, so the grouping gets the
        gradient), then a residual MLP. A segment that owns no patch reads
        the image's mean patch (zeros would meet the LayerNorms with zero
        variance, whose gradient is huge).
        """
        owner = chain_assignments(assignments, hw_shape, kind='hard')
        owner = owner.flatten(2)  # [B, S, N]
        count = owner.sum(dim=2, keepdim=True)
        pooled = torch.bmm(owner / count.clamp(min=1.0), patches)
        pooled = torch.where(
            count.detach() > 0.5, pooled, patches.mean(dim=1, keepdim=True)
        )
        pooled = self.readout_mlp(self.readout_norm(pooled), identity=pooled)
        return self.norm(pooled)

    def first_stage_group_tokens(self, batch_size: int) -> torch.Tensor:
        """The first stage's learnable group tokens for ``batch_size``
        images: ``[B, G_1, C]``."""
        return self.layers[0].initial_group_tokens(batch_size, None)

    def run_first_stage(
        self, tokens: torch.Tensor, start: int = 0, end: int | None = None
    ) -> torch.Tensor:
        """First-stage transformer layers ``[start, end)`` (None: to the
        end of the stage) on ``cat(patch tokens, group tokens)``
        ``[B, N + G_1, C]``; returns the same shape."""
        return self.layers[0].run_layers(tokens, start, end)

    def group_first_stage(
        self, patch_tokens: torch.Tensor, group_tokens: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The first grouping block: patch tokens ``[B, N, C]`` and the
        group tokens after the stage's layers ``[B, G_1, C]`` -> segments
        ``[B, S_1, C]`` and the assignment (``soft``, ``hard``:
        ``[B, S_1, N]``)."""
        return self.layers[0].downsample(patch_tokens, group_tokens)

    def encode_later_stages(
        self,
        segments: torch.Tensor,
        group_tokens: torch.Tensor,
        assignments: Sequence[dict],
        hw_shape: tuple[int, int],
        patches: torch.Tensor,
    ) -> GroupViTOutput:
        """Every stage after the first, the final norm and the readout.

        Args:
            segments: ``[B, S_1, C]`` segments of the first grouping.
            group_tokens: ``[B, G_1, C]`` first-stage group tokens after its
                layers (the next stage's group tokens are projected from
                them).
            assignments: the first grouping's assignment, in a list.
            hw_shape: patch grid ``(h, w)``.
            patches: ``[B, N, C]`` patch embeddings before position
                embedding (what ``segment_readout='patch'`` reads out).
        """
        assignments = list(assignments)
        for stage in self.layers[1:]:
            segments, group_tokens, assignment = stage(segments, group_tokens)
            if assignment is not None:
                assignments.append(assignment)
        tokens = self.norm(segments)
        segment_tokens = tokens
        if self.segment_readout == 'patch':
            segment_tokens = self.read_out_segments(
                patches, assignments, hw_shape
            )
        return GroupViTOutput(
            image_embed=tokens.mean(dim=1),
            segment_tokens=segment_tokens,
            assignments=assignments,
            hw_shape=hw_shape,
        )

    def forward(self, images: torch.Tensor) -> GroupViTOutput:
        """``images`` ``[B, 3, H, W]`` -> :class:`GroupViTOutput`."""
        tokens, hw_shape, patches = self.embed(images)
        num_patches = tokens.shape[1]
        groups = self.first_stage_group_tokens(tokens.shape[0])
        tokens = self.run_first_stage(torch.cat([tokens, groups], dim=1))
        groups = tokens[:, num_patches:]
        segments, assignment = self.group_first_stage(
            tokens[:, :num_patches], groups
        )
        return self.encode_later_stages(
            segments, groups, [assignment], hw_shape, patches
        )
