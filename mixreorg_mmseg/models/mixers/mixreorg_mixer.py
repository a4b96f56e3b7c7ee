"""MixReorg's image encoder at training time: three branches, three stages.

Implements MixReorg (Cai et al., ICCV 2023) Sec. 3 and Fig. 2 on top of a
:class:`~mixreorg_mmseg.models.backbones.GroupViT`, whose weights all
branches share::

    images -> patch_embed + pos_embed -> [B, N, C]
    (a) contextual mixing stage: stage-1 layers [0, mix_layer) on the
        original images, then the patch tokens are mixed by a MixingPlan
    (b) progressive mixing stage: the mixed tokens attend to their source
        images' original tokens (ProgressiveMixingBlock), then stage-1 layer
        l runs on original and mixed tokens together ([2B, ...]), for each
        l in [mix_layer, depth_1) (one block alone if that range is empty)
    (c) mixing restoration stage: the mixed tokens are put back in their
        source images (restored); original, mixed and restored tokens go
        through the grouping blocks and later stages together ([3B, ...])

It drives the GroupViT only through its stage interface (``embed``,
``first_stage_group_tokens``, ``run_first_stage``, ``group_first_stage``,
``encode_later_stages``). Like an MMSeg decode head with its
``loss_decode``, the mixer owns the two losses of its branches
(:meth:`MixReorgMixer.loss`)::

    restored_contrastive_loss(restored embeds, captions)
                                        -> loss_restored_contrastive
    mixed_segmentation_loss(mixed segment embeds, chained assignments,
                            captions, plan)
                                        -> loss_mixed_seg, mixed_seg_acc

At test time none of this runs: the segmentor calls the GroupViT alone, so
zero-shot inference costs exactly what GroupViT's does.

Choices (``docs/method.md``): ``mix_layer`` defaults to the end of stage 1;
the mixed images get the stage's learnable group tokens fresh at the mixing
layer (the original images' group tokens have already looked at one image);
the restored images use the group tokens of the original images they
restore.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from mmseg.registry import MODELS
from mmseg.utils import OptConfigType

from ..backbones.groupvit import GroupViT, GroupViTOutput, chain_assignments
from .mixing_plan import MixingPlan
from .patch_mixer import PatchMixer
from .progressive_mixing_block import ProgressiveMixingBlock


@dataclass
class MixReorgOutput:
    """The three branches (each a ``GroupViTOutput`` of B images) and the
    plan that made the mixed images."""

    original: GroupViTOutput
    mixed: GroupViTOutput
    restored: GroupViTOutput
    plan: MixingPlan


def _split_output(output: GroupViTOutput, parts: int) -> list:
    """Cut a ``GroupViTOutput`` of ``parts * B`` images into ``parts``."""
    embeds = output.image_embed.chunk(parts)
    segments = output.segment_tokens.chunk(parts)
    assignments = [
        {k: v.chunk(parts) for k, v in assignment.items()}
        for assignment in output.assignments
    ]
    return [
        GroupViTOutput(
            image_embed=embeds[i],
            segment_tokens=segments[i],
            assignments=[{k: v[i] for k, v in a.items()} for a in assignments],
            hw_shape=output.hw_shape,
        )
        for i in range(parts)
    ]


@MODELS.register_module()
class MixReorgMixer(nn.Module):
    """Contextual mixing, progressive mixing and mixing restoration.

    Args:
        embed_dims: width C of the GroupViT (filled in by the segmentor).
        num_heads: heads of its first stage (filled in by the segmentor).
        stage_depth: layers of its first stage (filled in by the segmentor).
        mix_layer: tokens are mixed after this many stage-1 layers (0:
            raw patches, the paper's "mixing without context" ablation);
            None: the end of the stage.
        group_size: images per mixing group (:class:`PatchMixer`).
        unit: side of the token blocks that move together.
        seed: seed of the mixer's generator (None: torch's global one).
        progressive: with the progressive mixing blocks, one before each
            stage-1 layer after ``mix_layer`` (one if there is none); False:
            the mixed tokens only go through the shared layers.
        restored_contrastive_loss: loss of the restored branch's pooled
            embeddings with the captions (None:
            ``ImageTextContrastiveLoss`` named
            ``loss_restored_contrastive``).
        mixed_segmentation_loss: token-level caption classification of the
            mixed images (None: ``MixedSegmentationLoss``).
        seg_assignment: ``'hard'`` or ``'soft'`` chained assignment for
            the segmentation loss (hard: what the grouping used, with the
            straight-through gradient).
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        stage_depth: int,
        mix_layer: int | None = None,
        group_size: int = 2,
        unit: int = 1,
        seed: int | None = None,
        progressive: bool = True,
        restored_contrastive_loss: OptConfigType = None,
        mixed_segmentation_loss: OptConfigType = None,
        seg_assignment: str = 'hard',
    ):
        super().__init__()
        if mix_layer is None:
            mix_layer = stage_depth
        if not 0 <= mix_layer <= stage_depth:
            raise ValueError(
                f'mixer mix_layer={mix_layer} must be in [0, {stage_depth}] '
                f'(the first GroupViT stage has {stage_depth} layers)'
            )
        self.embed_dims = embed_dims
        self.stage_depth = stage_depth
        self.mix_layer = mix_layer
        self.patch_mixer = PatchMixer(
            group_size=group_size, unit=unit, seed=seed
        )
        self.progressive = progressive
        # one block before each shared layer of the progressive stage; one
        # block alone when the tokens are mixed at the end of the stage
        blocks = max(1, stage_depth - mix_layer) if progressive else 0
        self.progressive_blocks = nn.ModuleList(
            ProgressiveMixingBlock(embed_dims, num_heads)
            for _ in range(blocks)
        )
        if seg_assignment not in ('hard', 'soft'):
            raise ValueError(
                f"mixer.seg_assignment must be 'hard' or 'soft', got "
                f'{seg_assignment!r}'
            )
        self.seg_assignment = seg_assignment
        self.restored_contrastive_loss = MODELS.build(
            restored_contrastive_loss
            or dict(
                type='ImageTextContrastiveLoss',
                loss_name='loss_restored_contrastive',
            )
        )
        self.mixed_segmentation_loss = MODELS.build(
            mixed_segmentation_loss or dict(type='MixedSegmentationLoss')
        )

    def check_backbone(self, backbone: GroupViT) -> None:
        """Fail at build time, naming the key, when the backbone does not
        fit (the segmentor fills the sizes in, a user may override them)."""
        if not isinstance(backbone, GroupViT):
            raise TypeError(
                f'MixReorgMixer needs a GroupViT backbone, got '
                f'{type(backbone).__name__}'
            )
        if backbone.embed_dims != self.embed_dims:
            raise ValueError(
                f'mixer.embed_dims={self.embed_dims} but backbone.embed_dims='
                f'{backbone.embed_dims}'
            )
        if backbone.depths[0] != self.stage_depth:
            raise ValueError(
                f'mixer.stage_depth={self.stage_depth} but the first '
                f'backbone stage has {backbone.depths[0]} layers'
            )
        self.patch_mixer.check_grid(backbone.patch_grid)

    def forward(
        self, backbone: GroupViT, images: torch.Tensor
    ) -> MixReorgOutput:
        """Run the three branches.

        Args:
            backbone: the shared GroupViT.
            images: ``[B, 3, H, W]``.

        Returns:
            the three branches (``[B, ...]`` each) and the mixing plan.
        """
        tokens, hw_shape, patches = backbone.embed(images)
        batch, num_patches, _ = tokens.shape
        plan = self.patch_mixer.plan(batch, hw_shape, tokens.device)
        fresh_groups = backbone.first_stage_group_tokens(batch)

        # (a) contextual mixing: context first, then mix the patch tokens
        original = backbone.run_first_stage(
            torch.cat([tokens, fresh_groups], dim=1), 0, self.mix_layer
        )
        mixed = torch.cat(
            [plan.mix(original[:, :num_patches]), fresh_groups], dim=1
        )

        # (b) progressive mixing: the mixed tokens take in their source
        # images' features, then both branches go through the shared layers
        both = torch.cat([original, mixed])
        layers = list(range(self.mix_layer, self.stage_depth))
        for i, block in enumerate(self.progressive_blocks):
            mixed_patches = block(
                both[batch:, :num_patches], both[:batch, :num_patches], plan
            )
            both = torch.cat(
                [
                    both[:batch],
                    torch.cat([mixed_patches, both[batch:, num_patches:]], 1),
                ]
            )
            if i < len(layers):
                both = backbone.run_first_stage(
                    both, layers[i], layers[i] + 1
                )
        if not self.progressive:
            both = backbone.run_first_stage(
                both, self.mix_layer, self.stage_depth
            )
        original, mixed = both[:batch], both[batch:]

        # (c) mixing restoration, then grouping for the three branches
        restored = plan.restore(mixed[:, :num_patches])
        segments = torch.cat(
            [original[:, :num_patches], mixed[:, :num_patches], restored]
        )
        group_tokens = torch.cat(
            [
                original[:, num_patches:],
                mixed[:, num_patches:],
                original[:, num_patches:],
            ]
        )
        segments, assignment = backbone.group_first_stage(
            segments, group_tokens
        )
        # the branches' own patch embeddings (segment_readout='patch'):
        # restoring the mixed ones gives the originals back exactly
        patches = torch.cat([patches, plan.mix(patches), patches])
        output = backbone.encode_later_stages(
            segments, group_tokens, [assignment], hw_shape, patches
        )
        branches = _split_output(output, 3)
        return MixReorgOutput(*branches, plan=plan)

    def loss(
        self,
        branches: MixReorgOutput,
        restored_embed: torch.Tensor,
        mixed_segment_embeds: torch.Tensor,
        caption_embed: torch.Tensor,
        logit_scale: torch.Tensor,
    ) -> dict:
        """MixReorg's two losses (and the logged token accuracy).

        Args:
            branches: what :meth:`forward` returned (the mixed branch's
                assignments, the plan).
            restored_embed: ``[B, D]`` projected pooled embeddings of the
                restored branch.
            mixed_segment_embeds: ``[B, S, D]`` projected final segments of
                the mixed images.
            caption_embed: ``[B, D]`` projected captions.
            logit_scale: the clamped scalar logit scale.

        Returns:
            ``loss_restored_contrastive``, ``loss_mixed_seg`` (by their
            losses' ``loss_name``) and ``mixed_seg_acc`` (fraction of mixed
            tokens whose source caption ranks first; logged, not trained).
        """
        plan = branches.plan
        token_to_segment = chain_assignments(
            branches.mixed.assignments,
            branches.mixed.hw_shape,
            kind=self.seg_assignment,
        ).flatten(2)
        seg_loss = self.mixed_segmentation_loss
        probs = seg_loss.token_probabilities(
            mixed_segment_embeds,
            token_to_segment,
            caption_embed,
            plan.same_group(),
            logit_scale,
        )
        accuracy = (probs.detach().argmax(dim=-1) == plan.labels()).float()
        return {
            self.restored_contrastive_loss.loss_name: (
                self.restored_contrastive_loss(
                    restored_embed, caption_embed, logit_scale
                )
            ),
            seg_loss.loss_name: seg_loss.loss_from_probabilities(
                probs, plan.labels()
            ),
            'mixed_seg_acc': accuracy.mean(),
        }
