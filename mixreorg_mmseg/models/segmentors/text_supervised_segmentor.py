"""The segmentor trained from image-text pairs: GroupViT, and MixReorg.

Training (``mode='loss'``) with ``mixer=None``: GroupViT (Xu et al., CVPR
2022, Sec. 3.2)::

    loss(inputs, data_samples)
      captions <- data_samples[i].metainfo['caption']
      backbone(inputs) -> image_projector               -> image [B, D]
      encode_text(captions [+ noun prompts])            -> text  [B, D]
      contrastive_loss(image, caption)                  -> loss_contrastive
      multi_label_loss(image, noun prompts)             -> loss_multi_label

With a ``mixer`` (``MixReorgMixer``): MixReorg (Cai et al., ICCV 2023,
Sec. 3, Fig. 2), the same model and text side plus::

      mixer(backbone, inputs) -> original, mixed, restored branches, plan
      contrastive_loss(original, caption)               -> loss_contrastive
      multi_label_loss(original, noun prompts)          -> loss_multi_label
      restored_contrastive_loss(restored, caption)      -> loss_restored_...
      mixed_segmentation_loss(mixed segments, tokens -> segments,
                              captions, plan.labels)    -> loss_mixed_seg

Zero-shot inference (``mode='predict'``), MMSeg's ``EncoderDecoder`` path::

    predict() -> inference() (whole / slide, from test_cfg)
              -> encode_decode() -> decode_head.predict() -> postprocess

The zero-shot decode head turns :meth:`encode_image` 's projected segment
embeddings and chained assignments, and :meth:`encode_text` 's class-prompt
embeddings, into per-pixel class scores; without one, ``predict`` fails
with a message saying so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
from mmengine.config import ConfigDict
from mmengine.logging import print_log
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from mmseg.utils import ConfigType, OptConfigType, SampleList

from ...utils.parameter_count import (
    count_parameters,
    format_parameter_counts,
)
from ..backbones.groupvit import chain_assignments
from ..text_encoders import NounPromptBuilder


def _fill_in_channels(cfg: ConfigType, width: int, key: str) -> ConfigType:
    """Set ``cfg.in_channels`` to the encoder's width, or check it."""
    cfg = dict(cfg)
    given = cfg.setdefault('in_channels', width)
    if given != width:
        raise ValueError(
            f'{key}.in_channels={given} but the encoder feeding it is '
            f'{width} wide; drop the key or set it to {width}'
        )
    return cfg


@MODELS.register_module()
class TextSupervisedSegmentor(EncoderDecoder):
    """Image encoder + text encoder trained contrastively on captions.

    Args:
        backbone: image encoder config (e.g. ``GroupViT``).
        text_encoder: text encoder config (e.g. ``OpenCLIPTextEncoder``); it
            must provide ``tokenize(list[str])`` and ``width``.
        image_projector: projection of image embeddings and segment tokens
            to the joint space (``ProjectionMLP``); ``in_channels`` is
            filled from ``backbone.embed_dims``.
        text_projector: projection of text embeddings (``in_channels``
            filled from ``text_encoder.width``); same ``out_channels``.
        contrastive_loss: image-caption loss config (None:
            ``ImageTextContrastiveLoss``).
        multi_label_loss: GroupViT's multi-label loss config, or None.
        noun_prompts: :class:`NounPromptBuilder` arguments (nouns per
            caption, templates, vocabulary); needed with the multi-label
            loss.
        contrast_temperature: initial temperature; the learnable logit
            scale starts at ``log(1 / contrast_temperature)``.
        logit_scale_max: ``exp(logit_scale)`` is clamped to this (100).
        share_logit_scale: the multi-label loss uses the contrastive
            loss's logit scale instead of its own.
        mixer: MixReorg's ``MixReorgMixer`` config (sizes are filled in
            from the backbone), or None for the GroupViT baseline.
        restored_contrastive_loss: loss of restored features with the
            captions (with a mixer; None: ``ImageTextContrastiveLoss`` named
            ``loss_restored_contrastive``).
        mixed_segmentation_loss: segmentation loss of the mixed images
            (with a mixer; None: ``MixedSegmentationLoss``).
        seg_assignment: ``'hard'`` or ``'soft'`` chained assignment for
            the segmentation loss (hard: what the grouping used, with the
            straight-through gradient).
        group_usage_loss: a term on the grouping assignments of the
            (original) images (``GroupUsageLoss``), or None.
        decode_head: zero-shot head for ``predict`` (None: training only).
        train_cfg, test_cfg: MMSeg's (``test_cfg.mode``: whole / slide).
        data_preprocessor: ``SegDataPreProcessor`` config.
        pretrained: only None (MMSeg's ``init_model`` passes it); weights
            come through ``load_from`` or the components' own options.
        init_cfg: MMEngine init config.
    """

    def __init__(
        self,
        backbone: ConfigType,
        text_encoder: ConfigType,
        image_projector: ConfigType,
        text_projector: ConfigType,
        contrastive_loss: OptConfigType = None,
        multi_label_loss: OptConfigType = None,
        noun_prompts: OptConfigType = None,
        contrast_temperature: float = 0.07,
        logit_scale_max: float = 100.0,
        share_logit_scale: bool = False,
        mixer: OptConfigType = None,
        restored_contrastive_loss: OptConfigType = None,
        mixed_segmentation_loss: OptConfigType = None,
        seg_assignment: str = 'hard',
        group_usage_loss: OptConfigType = None,
        decode_head: OptConfigType = None,
        train_cfg: OptConfigType = None,
        test_cfg: OptConfigType = None,
        data_preprocessor: OptConfigType = None,
        pretrained: str | None = None,
        init_cfg: OptConfigType = None,
    ):
        # EncoderDecoder's own __init__ insists on a decode head; the
        # inference methods it provides are what we reuse.
        BaseSegmentor.__init__(
            self, data_preprocessor=data_preprocessor, init_cfg=init_cfg
        )
        if pretrained is not None:
            raise ValueError(
                'TextSupervisedSegmentor takes no `pretrained`: load weights '
                'with `load_from` (or backbone.init_cfg / '
                'text_encoder.pretrained)'
            )
        if not 0 < contrast_temperature:
            raise ValueError('contrast_temperature must be > 0')
        self.backbone = MODELS.build(backbone)
        self.text_encoder = MODELS.build(text_encoder)
        self.image_projector = MODELS.build(
            _fill_in_channels(
                image_projector,
                self.backbone.embed_dims,
                'image_projector',
            )
        )
        self.text_projector = MODELS.build(
            _fill_in_channels(
                text_projector, self.text_encoder.width, 'text_projector'
            )
        )
        if self.image_projector.out_channels != (
            self.text_projector.out_channels
        ):
            raise ValueError(
                'image_projector.out_channels='
                f'{self.image_projector.out_channels} and '
                'text_projector.out_channels='
                f'{self.text_projector.out_channels} must be equal: both '
                'project into the same joint space'
            )
        self.contrastive_loss = MODELS.build(
            contrastive_loss or dict(type='ImageTextContrastiveLoss')
        )
        init_scale = math.log(1.0 / contrast_temperature)
        self.logit_scale = nn.Parameter(torch.tensor(init_scale))
        self.logit_scale_max = logit_scale_max

        self.multi_label_loss = None
        self.noun_prompts = None
        if multi_label_loss is not None:
            if noun_prompts is None:
                raise ValueError(
                    'multi_label_loss is set but noun_prompts is None: the '
                    'loss needs the nouns of each caption '
                    '(noun_prompts=dict(max_nouns=3, ...))'
                )
            self.multi_label_loss = MODELS.build(multi_label_loss)
            self.noun_prompts = NounPromptBuilder(**noun_prompts)
            if share_logit_scale:
                self.multi_label_logit_scale = None
            else:
                self.multi_label_logit_scale = nn.Parameter(
                    torch.tensor(init_scale)
                )

        self._init_mixer(
            mixer,
            restored_contrastive_loss,
            mixed_segmentation_loss,
            seg_assignment,
        )
        self.group_usage_loss = (
            None
            if group_usage_loss is None
            else MODELS.build(group_usage_loss)
        )
        self.decode_head = None
        self.align_corners = False
        if decode_head is not None:
            self._init_decode_head(decode_head)
        self.train_cfg = train_cfg
        self.test_cfg = ConfigDict(
            dict(mode='whole') if test_cfg is None else test_cfg
        )
        print_log(
            f'{type(self).__name__} parameters: '
            + format_parameter_counts(count_parameters(self)),
            logger='current',
        )

    def _init_mixer(
        self,
        mixer: OptConfigType,
        restored_contrastive_loss: OptConfigType,
        mixed_segmentation_loss: OptConfigType,
        seg_assignment: str,
    ) -> None:
        """MixReorg's mixer and its two extra losses (None: GroupViT)."""
        self.mixer = None
        self.restored_contrastive_loss = None
        self.mixed_segmentation_loss = None
        if seg_assignment not in ('hard', 'soft'):
            raise ValueError(
                f"seg_assignment must be 'hard' or 'soft', got "
                f'{seg_assignment!r}'
            )
        self.seg_assignment = seg_assignment
        if mixer is None:
            return
        mixer = dict(mixer)
        for key, value in (
            ('embed_dims', self.backbone.embed_dims),
            ('num_heads', self.backbone.num_heads[0]),
            ('stage_depth', self.backbone.depths[0]),
        ):
            mixer.setdefault(key, value)
        self.mixer = MODELS.build(mixer)
        self.mixer.check_backbone(self.backbone)
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

    def _init_decode_head(self, decode_head: ConfigType) -> None:
        """Build the zero-shot head; its class count is read from it when
        needed (it learns its classes after the build)."""
        self.decode_head = MODELS.build(decode_head)
        self.align_corners = self.decode_head.align_corners

    @property
    def num_classes(self) -> int | None:
        """Classes of the zero-shot head (None before it has any)."""
        head = self.decode_head
        return None if head is None else head.num_classes

    @property
    def out_channels(self) -> int | None:
        """Score maps of the zero-shot head (slide inference allocates
        them)."""
        head = self.decode_head
        return None if head is None else head.out_channels

    @property
    def with_mixer(self) -> bool:
        """MixReorg (True) or the GroupViT baseline (False)."""
        return self.mixer is not None

    # -- the pieces training and zero-shot inference share -----------------

    def scale(self, parameter: torch.Tensor) -> torch.Tensor:
        """``exp(parameter)`` clamped to ``logit_scale_max``."""
        return parameter.exp().clamp(max=self.logit_scale_max)

    def encode_image(self, inputs: torch.Tensor) -> dict:
        """Encode and project images.

        Args:
            inputs: ``[B, 3, H, W]`` normalised images.

        Returns:
            dict with ``image_embed`` ``[B, D]``, ``segment_embeds``
            ``[B, S, D]`` (projected final segment tokens), ``output`` (the
            backbone's output: assignments, grid).
        """
        output = self.backbone(inputs)
        return dict(
            image_embed=self.image_projector(output.image_embed),
            segment_embeds=self.image_projector(output.segment_tokens),
            output=output,
        )

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Tokenize, encode and project ``texts``: returns ``[N, D]``."""
        device = self.logit_scale.device
        tokens = self.text_encoder.tokenize(list(texts)).to(device)
        return self.text_projector(self.text_encoder(tokens))

    def extract_feat(self, inputs: torch.Tensor) -> dict:
        """:meth:`encode_image`; the zero-shot head consumes it."""
        return self.encode_image(inputs)

    # -- training ------------------------------------------------------------

    @staticmethod
    def captions_of(data_samples: SampleList) -> list[str]:
        """The caption of every sample (``metainfo['caption']``)."""
        captions = []
        for sample in data_samples:
            caption = sample.metainfo.get('caption')
            if not isinstance(caption, str) or not caption.strip():
                raise KeyError(
                    'a training sample has no caption (metainfo "caption"): '
                    f'{sample.metainfo.get("img_path", "<no img_path>")}; '
                    'pack it with meta_keys including "caption"'
                )
            captions.append(caption)
        return captions

    def encode_captions(
        self, captions: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Captions and (with the multi-label loss) their noun prompts in
        one text-encoder pass.

        Returns:
            caption embeddings ``[B, D]``, prompt embeddings ``[B, K, D]``
            (zeros where invalid) and the valid mask ``[B, K]``, or None.
        """
        batch = len(captions)
        texts = list(captions)
        valid = None
        if self.multi_label_loss is not None:
            prompts, valid = self.noun_prompts(captions)
            flat_valid = valid.flatten().tolist()
            texts += [
                p for p, ok in zip(prompts, flat_valid, strict=True) if ok
            ]
        text_embed = self.encode_text(texts)
        if valid is None:
            return text_embed, None, None
        valid = valid.to(text_embed.device)
        prompt_embeds = text_embed.new_zeros(
            valid.numel(), text_embed.shape[-1]
        )
        prompt_embeds[valid.flatten()] = text_embed[batch:]
        return (
            text_embed[:batch],
            prompt_embeds.view(*valid.shape, -1),
            valid,
        )

    def loss(self, inputs: torch.Tensor, data_samples: SampleList) -> dict:
        """The losses of a batch of images and their captions.

        Args:
            inputs: ``[B, 3, H, W]``.
            data_samples: B samples whose metainfo holds ``caption``.

        Returns:
            ``loss_contrastive`` (and ``loss_multi_label``); with a mixer
            also ``loss_restored_contrastive`` and ``loss_mixed_seg``; plus
            values that are logged but not summed into the loss:
            ``logit_scale`` and, with a mixer, ``mixed_seg_acc`` (fraction
            of mixed tokens whose source caption is ranked first).
        """
        captions = self.captions_of(data_samples)
        caption_embed, prompt_embeds, valid = self.encode_captions(captions)
        logit_scale = self.scale(self.logit_scale)
        losses = {'logit_scale': logit_scale.detach()}

        if self.with_mixer:
            branches = self.mixer(self.backbone, inputs)
            original = branches.original
            batch = original.image_embed.shape[0]
            parts = [
                original.image_embed,
                branches.restored.image_embed,
                branches.mixed.segment_tokens.flatten(0, 1),
            ]
            if self._uses_segment_embeds:
                parts.append(original.segment_tokens.flatten(0, 1))
            # one projector pass: BatchNorm sees all that is projected
            projected = self.image_projector(torch.cat(parts))
            image_embed, restored_embed, mixed_segments, *segments = (
                projected.split([len(p) for p in parts])
            )
            mixed_segments = mixed_segments.view(
                batch, -1, projected.shape[-1]
            )
            segment_embeds = (
                segments[0].view(batch, -1, projected.shape[-1])
                if segments
                else None
            )
            output = original
            losses.update(
                self._mixing_losses(
                    branches,
                    restored_embed,
                    mixed_segments,
                    caption_embed,
                    logit_scale,
                )
            )
        else:
            encoded = self.encode_image(inputs)
            image_embed = encoded['image_embed']
            segment_embeds = encoded['segment_embeds']
            output = encoded['output']

        losses[self.contrastive_loss.loss_name] = self.contrastive_loss(
            image_embed, caption_embed, logit_scale
        )
        if self.group_usage_loss is not None:
            losses[self.group_usage_loss.loss_name] = self.group_usage_loss(
                output.assignments
            )
        if self.multi_label_loss is not None:
            scale_param = self.multi_label_logit_scale
            ml_scale = self.scale(
                self.logit_scale if scale_param is None else scale_param
            )
            # the segments that own patches, once for both segment losses
            segment_valid = (
                self.segments_owning_patches(output)
                if self._uses_segment_embeds
                else None
            )
            if self._multi_label_on_segments:
                losses[self.multi_label_loss.loss_name] = (
                    self.multi_label_loss(
                        segment_embeds,
                        prompt_embeds,
                        valid,
                        ml_scale,
                        segment_valid=segment_valid,
                    )
                )
            else:
                losses[self.multi_label_loss.loss_name] = (
                    self.multi_label_loss(
                        image_embed, prompt_embeds, valid, ml_scale
                    )
                )
        return losses

    @property
    def _uses_segment_embeds(self) -> bool:
        """Whether a loss needs the projected final segments of the
        original images."""
        return self._multi_label_on_segments

    @property
    def _multi_label_on_segments(self) -> bool:
        """Whether the multi-label loss scores segments (its
        ``pooling='max'``) rather than the pooled image embedding."""
        loss = self.multi_label_loss
        return loss is not None and getattr(loss, 'uses_segments', False)

    @staticmethod
    def segments_owning_patches(output) -> torch.Tensor:
        """``BoolTensor [B, S]``: the final segments that the chained hard
        assignments give at least one patch."""
        with torch.no_grad():
            owner = chain_assignments(
                output.assignments, output.hw_shape, kind='hard'
            ).flatten(2)
            index = owner.argmax(dim=1)  # [B, N]
            owned = torch.zeros(
                owner.shape[:2], dtype=torch.bool, device=owner.device
            )
            owned.scatter_(1, index, True)
        return owned

    def _mixing_losses(
        self,
        branches,
        restored_embed: torch.Tensor,
        mixed_segments: torch.Tensor,
        caption_embed: torch.Tensor,
        logit_scale: torch.Tensor,
    ) -> dict:
        """MixReorg's restored-feature contrastive loss and mixed-image
        segmentation loss (and the logged token accuracy)."""
        plan = branches.plan
        token_to_segment = chain_assignments(
            branches.mixed.assignments,
            branches.mixed.hw_shape,
            kind=self.seg_assignment,
        ).flatten(2)
        seg_loss = self.mixed_segmentation_loss
        probs = seg_loss.token_probabilities(
            mixed_segments,
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

    # -- inference -----------------------------------------------------------

    def text_weights_version(self) -> tuple:
        """Changes whenever a weight or buffer of the text encoder or the
        text projector is replaced or updated in place (optimizer step,
        checkpoint load): the key under which a zero-shot head caches its
        class embeddings."""
        tensors = [
            *self.text_encoder.parameters(),
            *self.text_encoder.buffers(),
            *self.text_projector.parameters(),
            *self.text_projector.buffers(),
        ]
        return tuple((id(t), t._version) for t in tensors)

    def encode_decode(
        self, inputs: torch.Tensor, batch_img_metas: list[dict]
    ) -> torch.Tensor:
        """Per-pixel class logits ``[B, K, H, W]`` from the zero-shot head.

        The head receives :meth:`encode_image` 's dict plus
        ``encode_text`` (``list[str] -> [N, D]``), ``text_version``
        (:meth:`text_weights_version`) and ``logit_scale`` (clamped scalar).
        """
        if self.decode_head is None:
            raise RuntimeError(
                'TextSupervisedSegmentor has no decode_head: set '
                'model.decode_head to a zero-shot head to run predict / '
                'tools/test.py (training needs none)'
            )
        feats = self.extract_feat(inputs)
        feats.update(
            encode_text=self.encode_text,
            text_version=self.text_weights_version(),
            logit_scale=self.scale(self.logit_scale),
        )
        return self.decode_head.predict(feats, batch_img_metas, self.test_cfg)

    def _forward(
        self, inputs: torch.Tensor, data_samples: SampleList = None
    ) -> dict:
        """Tensor mode: the projected image features (:meth:`encode_image`)."""
        return self.encode_image(inputs)
