"""The segmentor trained from image-text pairs: GroupViT, and MixReorg.

Training (``mode='loss'``) with ``mixer=None``: GroupViT (Xu et al., CVPR
2022, Sec. 3.2)::

    loss(inputs, data_samples)
      caption_tokens_of(data_samples)             -> the pipeline's tokens
                                                     (TokenizeCaption), else
                                                     tokenize_captions()
      encode_captions(tokens)                     -> text: captions [B, D],
                                                     prompts [B, K, D]
      encode_image(inputs): backbone -> image_projector
                                                  -> image [B, D],
                                                     segments [B, S, D]
      caption_losses(image, text)
        contrastive_loss(image, captions)         -> loss_contrastive
        group_usage_loss(assignments)             -> loss_group_usage
        multi_label_loss(image or segments, prompts)
                                                  -> loss_multi_label

With a ``mixer`` (``MixReorgMixer``): MixReorg (Cai et al., ICCV 2023,
Sec. 3, Fig. 2); the same text side and caption losses, on the original
branch::

    loss(inputs, data_samples)
      encode_captions(caption_tokens_of(...))     -> text
      mixer(backbone, inputs)                     -> original, mixed,
                                                     restored branches, plan
      project_branches(branches)                  -> image (original),
                                                     restored [B, D],
                                                     mixed segments [B, S, D]
      mixer.loss(branches, restored, mixed segments, captions)
                                                  -> loss_restored_contrastive,
                                                     loss_mixed_seg
      caption_losses(image, text)                 -> as without a mixer

Zero-shot inference (``mode='predict'``), MMSeg's ``EncoderDecoder`` path;
no mixer runs, so a MixReorg checkpoint is tested exactly as GroupViT::

    predict() -> inference() (whole / slide, from test_cfg)
              -> encode_decode(): encode_image() -> decode_head.predict()
              -> postprocess_result()

The zero-shot decode head turns :meth:`encode_image` 's projected segment
embeddings and chained assignments, and :meth:`encode_text` 's class-prompt
embeddings, into per-pixel class scores; without one, ``predict`` fails
with a message saying so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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
from ..losses import MultiLabelContrastiveLoss
from ..mixers import MixReorgOutput
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


@dataclass
class CaptionTokens:
    """The tokens of a batch's text side (CLIP BPE ids, zero-padded).

    Attributes:
        captions: ``LongTensor [B, L]``.
        prompts: ``LongTensor [B, K, L]`` noun-prompt tokens (zeros where
            invalid), or None without the multi-label loss.
        valid: ``BoolTensor [B, K]``: the prompts that exist, or None.
    """

    captions: torch.Tensor
    prompts: torch.Tensor | None = None
    valid: torch.Tensor | None = None


@dataclass
class CaptionEmbeddings:
    """The projected text side of a batch.

    Attributes:
        captions: ``[B, D]`` caption embeddings.
        prompts: ``[B, K, D]`` noun-prompt embeddings (zeros where
            invalid), or None without the multi-label loss.
        valid: ``BoolTensor [B, K]``: the prompts that exist, or None.
    """

    captions: torch.Tensor
    prompts: torch.Tensor | None = None
    valid: torch.Tensor | None = None


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
        multi_label_loss: GroupViT's multi-label loss config
            (``MultiLabelContrastiveLoss``; its ``pooling`` says whether it
            scores the pooled image embedding or the segments), or None.
        noun_prompts: :class:`NounPromptBuilder` arguments (nouns per
            caption, templates, vocabulary); needed with the multi-label
            loss.
        contrast_temperature: initial temperature; the learnable logit
            scale starts at ``log(1 / contrast_temperature)``.
        logit_scale_max: ``exp(logit_scale)`` is clamped to this (100).
        share_logit_scale: the multi-label loss uses the contrastive
            loss's logit scale instead of its own.
        mixer: MixReorg's ``MixReorgMixer`` config, with its own two
            losses (sizes are filled in from the backbone), or None for the
            GroupViT baseline.
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
        # which image features the multi-label loss scores, fixed here
        self.multi_label_on_segments = False
        if multi_label_loss is not None:
            if noun_prompts is None:
                raise ValueError(
                    'multi_label_loss is set but noun_prompts is None: the '
                    'loss needs the nouns of each caption '
                    '(noun_prompts=dict(max_nouns=3, ...))'
                )
            self.multi_label_loss = MODELS.build(multi_label_loss)
            if not isinstance(
                self.multi_label_loss, MultiLabelContrastiveLoss
            ):
                raise TypeError(
                    'multi_label_loss must be a MultiLabelContrastiveLoss, '
                    f'got {type(self.multi_label_loss).__name__}'
                )
            self.multi_label_on_segments = self.multi_label_loss.uses_segments
            self.noun_prompts = NounPromptBuilder(**noun_prompts)
            if share_logit_scale:
                self.multi_label_logit_scale = None
            else:
                self.multi_label_logit_scale = nn.Parameter(
                    torch.tensor(init_scale)
                )

        # the first batch of pipeline tokens is checked against the model
        self.pipeline_tokens_checked = False
        self.mixer = None if mixer is None else self._build_mixer(mixer)
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

    def _build_mixer(self, mixer: ConfigType) -> nn.Module:
        """MixReorg's mixer, its sizes filled in from the backbone."""
        mixer = dict(mixer)
        for key, value in (
            ('embed_dims', self.backbone.embed_dims),
            ('num_heads', self.backbone.num_heads[0]),
            ('stage_depth', self.backbone.depths[0]),
        ):
            mixer.setdefault(key, value)
        built = MODELS.build(mixer)
        built.check_backbone(self.backbone)
        return built

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

    def tokenize_captions(self, captions: Sequence[str]) -> CaptionTokens:
        """The string path: tokens of B captions and (with the multi-label
        loss) of their noun prompts, built here on the main process."""
        captions = list(captions)
        if self.multi_label_loss is None:
            return CaptionTokens(self.text_encoder.tokenize(captions))
        prompts, valid = self.noun_prompts(captions)
        texts = captions + [p for p in prompts if p]
        tokens = self.text_encoder.tokenize(texts)
        batch = len(captions)
        prompt_tokens = tokens.new_zeros(len(prompts), tokens.shape[-1])
        prompt_tokens[valid.flatten()] = tokens[batch:]
        return CaptionTokens(
            tokens[:batch], prompt_tokens.view(*valid.shape, -1), valid
        )

    def caption_tokens_of(self, data_samples: SampleList) -> CaptionTokens:
        """The tokens of a batch's captions: those the data pipeline made
        (``TokenizeCaption``, in ``metainfo``) when every sample has them,
        else :meth:`tokenize_captions` of the caption strings."""
        metas = [sample.metainfo for sample in data_samples]
        if not all('caption_tokens' in meta for meta in metas):
            return self.tokenize_captions(self.captions_of(data_samples))
        tokens = CaptionTokens(
            torch.stack([meta['caption_tokens'] for meta in metas])
        )
        if self.multi_label_loss is not None:
            if not all('prompt_tokens' in meta for meta in metas):
                raise KeyError(
                    'the samples carry caption_tokens but no prompt_tokens, '
                    'and the model has a multi-label loss: set max_nouns in '
                    "the pipeline's TokenizeCaption (as model.noun_prompts) "
                    "and pack 'prompt_tokens', 'prompt_valid' in meta_keys"
                )
            tokens.prompts = torch.stack([m['prompt_tokens'] for m in metas])
            tokens.valid = torch.stack([m['prompt_valid'] for m in metas])
        if not self.pipeline_tokens_checked:
            self.check_pipeline_tokens(tokens, self.captions_of(data_samples))
            self.pipeline_tokens_checked = True
        return tokens

    def check_pipeline_tokens(
        self, tokens: CaptionTokens, captions: list[str]
    ) -> None:
        """Check the data pipeline's tokens against the model's settings.

        ``TokenizeCaption`` and the model are configured apart; their
        caption tokens, noun counts and (with one template) prompt tokens
        must agree. Nothing is drawn from the random generators, so the
        check does not change what training draws.

        Raises:
            ValueError: naming the settings that differ.
        """
        expected = self.text_encoder.tokenize(captions)
        if tokens.captions.shape != expected.shape or not torch.equal(
            tokens.captions, expected
        ):
            raise ValueError(
                "the data pipeline's caption tokens "
                f"{tuple(tokens.captions.shape)} differ from the model's "
                f'{tuple(expected.shape)}: TokenizeCaption.context_length '
                'must equal model.text_encoder.context_length='
                f'{self.text_encoder.context_length}'
            )
        if self.multi_label_loss is None:
            return
        builder = self.noun_prompts
        zeros = [0] * builder.max_nouns
        prompts = [builder.prompts(c, zeros) for c in captions]
        valid = torch.tensor([[p != '' for p in row] for row in prompts])
        same_nouns = tokens.valid.shape == valid.shape and torch.equal(
            tokens.valid, valid
        )
        same_prompts = same_nouns
        if same_nouns and len(builder.templates) == 1:
            flat = [p for row in prompts for p in row if p]
            same_prompts = torch.equal(
                tokens.prompts[tokens.valid],
                self.text_encoder.tokenize(flat),
            )
        if not same_prompts:
            raise ValueError(
                "the data pipeline's noun prompts differ from the model's: "
                'TokenizeCaption max_nouns / templates / vocabulary must '
                f'equal model.noun_prompts (max_nouns={builder.max_nouns}, '
                f'{len(builder.templates)} template(s), vocabulary '
                f'{builder.vocabulary_file or "in the config"})'
            )

    def encode_captions(
        self, captions: Sequence[str] | CaptionTokens
    ) -> CaptionEmbeddings:
        """Captions and (with the multi-label loss) their noun prompts in
        one text-encoder pass.

        Args:
            captions: B caption strings (tokenized here by
                :meth:`tokenize_captions`) or their tokens.
        """
        if not isinstance(captions, CaptionTokens):
            captions = self.tokenize_captions(captions)
        device = self.logit_scale.device
        batch = captions.captions.shape[0]
        texts = captions.captions
        valid = None
        if self.multi_label_loss is not None:
            valid = captions.valid.to(device, non_blocking=True)
            prompts = captions.prompts.flatten(0, 1)[captions.valid.flatten()]
            texts = torch.cat([texts, prompts])
        tokens = texts.to(device, non_blocking=True)
        # A batch's noun prompts repeat a few nouns (64 captions of a world
        # with 8 shapes carry about 130 prompts, 8 of them distinct): each
        # distinct token row passes the encoder once and is copied back.
        # The encoder treats every text on its own, so the embeddings and
        # the gradients (summed over the copies) are those of the full
        # pass; the projector, whose BatchNorm sees the batch, gets every
        # row.
        distinct, copy_of = torch.unique(tokens, dim=0, return_inverse=True)
        text_embed = self.text_projector(self.text_encoder(distinct)[copy_of])
        if valid is None:
            return CaptionEmbeddings(text_embed)
        prompt_embeds = text_embed.new_zeros(
            valid.numel(), text_embed.shape[-1]
        )
        prompt_embeds[valid.flatten()] = text_embed[batch:]
        return CaptionEmbeddings(
            text_embed[:batch], prompt_embeds.view(*valid.shape, -1), valid
        )

    def loss(self, inputs: torch.Tensor, data_samples: SampleList) -> dict:
        """The losses of a batch of images and their captions (the flow is
        drawn in the module docstring).

        Args:
            inputs: ``[B, 3, H, W]``.
            data_samples: B samples whose metainfo holds ``caption``.

        Returns:
            :meth:`caption_losses` and, with a mixer, the mixer's
            (``MixReorgMixer.loss``); plus ``logit_scale``, logged but not
            summed into the loss.
        """
        text = self.encode_captions(self.caption_tokens_of(data_samples))
        logit_scale = self.scale(self.logit_scale)
        losses = {'logit_scale': logit_scale.detach()}
        if self.with_mixer:
            branches = self.mixer(self.backbone, inputs)
            image, restored, mixed_segments = self.project_branches(branches)
            losses.update(
                self.mixer.loss(
                    branches,
                    restored,
                    mixed_segments,
                    text.captions,
                    logit_scale,
                )
            )
        else:
            image = self.encode_image(inputs)
        losses.update(self.caption_losses(image, text, logit_scale))
        return losses

    def project_branches(
        self, branches: MixReorgOutput
    ) -> tuple[dict, torch.Tensor, torch.Tensor]:
        """Project what the losses read of the mixer's three branches in one
        ``image_projector`` pass, so that its BatchNorm sees all of it.

        Returns:
            the original branch as :meth:`encode_image` gives it (with
            ``segment_embeds`` None unless the multi-label loss scores
            segments), the restored branch's embeddings ``[B, D]`` and the
            mixed images' segment embeddings ``[B, S, D]``.
        """
        original = branches.original
        batch = original.image_embed.shape[0]
        parts = [
            original.image_embed,
            branches.restored.image_embed,
            branches.mixed.segment_tokens.flatten(0, 1),
        ]
        if self.multi_label_on_segments:
            parts.append(original.segment_tokens.flatten(0, 1))
        projected = self.image_projector(torch.cat(parts))
        image_embed, restored_embed, mixed_segments, *segments = (
            projected.split([len(p) for p in parts])
        )
        width = projected.shape[-1]
        image = dict(
            image_embed=image_embed,
            segment_embeds=(
                segments[0].view(batch, -1, width) if segments else None
            ),
            output=original,
        )
        return image, restored_embed, mixed_segments.view(batch, -1, width)

    def caption_losses(
        self,
        image: dict,
        text: CaptionEmbeddings,
        logit_scale: torch.Tensor,
    ) -> dict:
        """GroupViT's losses of the (original) images and their captions.

        Args:
            image: :meth:`encode_image` 's dict: ``image_embed`` ``[B, D]``,
                ``segment_embeds`` ``[B, S, D]`` (needed when the
                multi-label loss scores segments), ``output`` (the
                backbone's, for the assignments).
            text: :meth:`encode_captions` 's embeddings.
            logit_scale: the clamped scalar logit scale.

        Returns:
            ``loss_contrastive``, and ``loss_group_usage`` and
            ``loss_multi_label`` when those losses are set (by their
            ``loss_name``).
        """
        losses = {
            self.contrastive_loss.loss_name: self.contrastive_loss(
                image['image_embed'], text.captions, logit_scale
            )
        }
        if self.group_usage_loss is not None:
            losses[self.group_usage_loss.loss_name] = self.group_usage_loss(
                image['output'].assignments
            )
        if self.multi_label_loss is not None:
            scale_param = self.multi_label_logit_scale
            scale = self.scale(
                self.logit_scale if scale_param is None else scale_param
            )
            if self.multi_label_on_segments:
                scored = image['segment_embeds']
                segment_valid = self.segments_owning_patches(image['output'])
            else:
                scored, segment_valid = image['image_embed'], None
            losses[self.multi_label_loss.loss_name] = self.multi_label_loss(
                scored,
                text.prompts,
                text.valid,
                scale,
                segment_valid=segment_valid,
            )
        return losses

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
        (:meth:`text_weights_version`), ``logit_scale`` (clamped scalar)
        and ``inputs`` (the normalised images ``[B, 3, H, W]``, which a
        refining head reads).
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
            inputs=inputs,
        )
        return self.decode_head.predict(feats, batch_img_metas, self.test_cfg)

    def _forward(
        self, inputs: torch.Tensor, data_samples: SampleList = None
    ) -> dict:
        """Tensor mode: the projected image features (:meth:`encode_image`)."""
        return self.encode_image(inputs)
