"""GroupViT's zero-shot segmentation as an MMSeg decode head.

GroupViT (Xu et al., CVPR 2022, Sec. 3.3 "Zero-shot transfer to semantic
segmentation"; MixReorg, Cai et al., ICCV 2023, tests the same way): every
pixel belongs to one final segment through the grouping assignments of all
stages, and every segment gets the class whose prompt embedding it is most
similar to. The head is what :class:`~mixreorg_mmseg.models.segmentors.
TextSupervisedSegmentor` calls in ``predict`` mode; MMSeg's
``EncoderDecoder`` whole / slide inference and ``postprocess_result`` run
around it unchanged::

    predict(feats, batch_img_metas, test_cfg)
      class_embeddings(encode_text)     -> text [K_fg, D]  (cached)
      segment_class_scores(segments, image, text, scale)
                                        -> scores [B, S, K_fg]
      pixel_segments(assignments, size[, image])
                                        -> segment index [B, H, W]
      class_logits(index, scores)       -> logits [B, K, H, W]

``K`` is the number of classes of the dataset; with a background class
(``bg_thresh`` set) class 0 is background, is never prompted, and
``K_fg = K - 1``.

Background rule (GroupViT's ``bg_thresh``, exactly): let ``p(x)`` be the
best foreground score of pixel ``x`` (the score of its segment's best
class) and ``m`` the best score of any segment of the image (crop, in slide
mode) for any class. Pixel ``x`` is background when
``p(x) < min(bg_thresh, m)``; taking the minimum with ``m`` keeps the image's
most confident segment foreground even when no score reaches the threshold.
The score is GroupViT's class probability (``bg_score='probability'``) or,
our option, the cosine similarity of the segment with the class prompt
(``bg_score='cosine'``): a softmax over the classes hides how far a segment
is from every class, so a background segment that is a little closer to one
class than to the others gets as high a probability as an object
(measured on the synthetic world, docs/benchmarks.md).
The output's background channel is 1 on background pixels and 0 elsewhere,
the foreground channels hold the scores (in ``[0, 1]``), so ``argmax`` over
the channels is the predicted class.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule, BaseTTAModel, is_model_wrapper
from mmseg.registry import MODELS

from ...utils.prompt_templates import Templates, fill_templates
from ..backbones.groupvit import chain_assignments


def _check_class_names(names: Sequence[str], key: str) -> tuple[str, ...]:
    """``names`` as a tuple of distinct non-empty strings, or a ValueError
    naming ``key``."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError(
            f'{key} must be a list of class names, got {type(names).__name__}'
        )
    names = tuple(names)
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f'{key}[{i}]={name!r} is not a class name')
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f'{key} lists {repeated} more than once')
    return names


def input_size(batch_img_metas: Sequence[dict]) -> tuple[int, int]:
    """``(H, W)`` of the network input: the crop in slide inference (its
    ``img_shape`` is a ``torch.Size``), else ``pad_shape`` or
    ``img_shape``. The rule of MMSeg's ``BaseDecodeHead.predict_by_feat``,
    so the logits line up with what ``EncoderDecoder`` expects."""
    meta = batch_img_metas[0]
    if isinstance(meta['img_shape'], torch.Size):
        size = meta['img_shape']
    elif 'pad_shape' in meta:
        size = meta['pad_shape'][:2]
    else:
        size = meta['img_shape'][:2]
    return int(size[0]), int(size[1])


@MODELS.register_module()
class ZeroShotGroupHead(BaseModule):
    """Per-pixel class scores from GroupViT's segments and class prompts.

    It has no weights: everything it needs arrives in ``feats`` (see
    :meth:`predict`). It is a ``BaseModule`` rather than MMSeg's
    ``BaseDecodeHead``, whose constructor builds a classifier convolution,
    a loss and a fixed ``num_classes`` that a zero-shot head has no use for;
    it keeps the attributes ``EncoderDecoder`` reads (``num_classes``,
    ``out_channels``, ``align_corners``, ``threshold``).

    Args:
        class_names: the classes, in label order (label value ``i`` is
            class ``i``; background first when ``bg_thresh`` is set). None:
            they are set before testing from the test dataset's
            ``metainfo['classes']`` by ``ZeroShotClassesHook``, or by
            :func:`set_zero_shot_classes`.
        prompt_names: optional mapping from a class name to the words put
            into the prompts (e.g. ``{'pottedplant': 'potted plant'}``);
            classes not in it are prompted with their own name.
        templates: prompt templates: a name of
            :data:`~mixreorg_mmseg.models.text_encoders.PROMPT_TEMPLATES`
            (``'simple'``, GroupViT's choice; ``'imagenet'``...) or a list
            of strings with one ``{}``. A class's embedding is the mean of
            its templates' projected embeddings, L2-normalised (GroupViT).
        bg_thresh: None: no background class, every class is prompted.
            A number in ``[0, 1]``: class 0 is background, decided by the
            threshold rule of the module docstring (GroupViT: VOC 0.95,
            COCO-Object 0.95, PASCAL Context 0.35).
        bg_score: what ``bg_thresh`` is compared with: ``'probability'``
            (GroupViT) or ``'cosine'`` (the segment's cosine similarity
            with the class prompt, in ``[-1, 1]``).
        topk_classes: GroupViT restricts each segment's classes to the
            ``topk_classes`` best classes of the whole-image embedding
            (softmax over the restricted set, times the unrestricted
            softmax). None: the unrestricted softmax alone.
        text_batch_size: prompts encoded per text-encoder call.
        refine: None, or a config (e.g. ``dict(type=
            'PixelAdaptiveRefinement')``) of a module called as
            ``refine(image, maps)`` that refines the segment maps, resized
            to the input, by the input image before each pixel takes its
            segment; the segmentor passes the image as ``feats['inputs']``.
        align_corners: read by ``EncoderDecoder`` when it resizes logits.
        init_cfg: MMEngine init config (unused: no weights).
    """

    #: binary thresholding of MMSeg's ``postprocess_result``: never used,
    #: since the head always has at least two output channels
    threshold = None

    def __init__(
        self,
        class_names: Sequence[str] | None = None,
        prompt_names: Mapping[str, str] | None = None,
        templates: Templates = 'simple',
        bg_thresh: float | None = None,
        bg_score: str = 'probability',
        topk_classes: int | None = 5,
        text_batch_size: int = 256,
        refine: dict | None = None,
        align_corners: bool = False,
        init_cfg: dict | None = None,
    ):
        super().__init__(init_cfg=init_cfg)
        if bg_thresh is not None and not 0.0 <= bg_thresh <= 1.0:
            raise ValueError(
                f'decode_head.bg_thresh={bg_thresh} must be in [0, 1] '
                '(or None: no background class)'
            )
        if bg_score not in ('probability', 'cosine'):
            raise ValueError(
                f"decode_head.bg_score must be 'probability' or 'cosine', "
                f'got {bg_score!r}'
            )
        if topk_classes is not None and topk_classes < 1:
            raise ValueError(
                f'decode_head.topk_classes={topk_classes} must be >= 1 or None'
            )
        if text_batch_size < 1:
            raise ValueError('decode_head.text_batch_size must be >= 1')
        self.prompt_names = dict(prompt_names or {})
        for name, words in self.prompt_names.items():
            if not isinstance(words, str) or not words.strip():
                raise ValueError(
                    f'decode_head.prompt_names[{name!r}]={words!r} is not '
                    'a name'
                )
        # resolved now so that a bad template fails when the model is built
        fill_templates(['x'], templates)
        self.templates = templates
        self.bg_thresh = bg_thresh
        self.bg_score = bg_score
        self.topk_classes = topk_classes
        self.text_batch_size = text_batch_size
        self.refine = None if refine is None else MODELS.build(refine)
        self.align_corners = align_corners
        self.configured_class_names = None
        self.class_names = None
        if class_names is not None:
            self.configured_class_names = _check_class_names(
                class_names, 'decode_head.class_names'
            )
            self.set_class_names(self.configured_class_names)
        self._cache_key = None
        self._cache_value = None

    # -- classes ------------------------------------------------------------

    @property
    def with_background(self) -> bool:
        """Whether class 0 is a background decided by ``bg_thresh``."""
        return self.bg_thresh is not None

    @property
    def num_classes(self) -> int | None:
        """``K``, background included (None until classes are set)."""
        return None if self.class_names is None else len(self.class_names)

    @property
    def out_channels(self) -> int | None:
        """Channels of the logits: ``K``."""
        return self.num_classes

    def set_class_names(self, class_names: Sequence[str]) -> None:
        """Use ``class_names`` (label order) from now on.

        Raises:
            ValueError: repeated or empty names, fewer than two classes,
                a ``prompt_names`` key that is not a class, or classes that
                differ from ``decode_head.class_names`` given in the config.
        """
        names = _check_class_names(class_names, 'class_names')
        if (
            self.configured_class_names is not None
            and names != self.configured_class_names
        ):
            raise ValueError(
                'the test dataset has the classes '
                f'{list(names)} but decode_head.class_names is '
                f'{list(self.configured_class_names)}: drop '
                "decode_head.class_names to use the dataset's, or rename "
                'the prompts with decode_head.prompt_names'
            )
        if len(names) < 2:
            raise ValueError(
                f'zero-shot segmentation needs at least 2 classes, got '
                f'{list(names)}'
            )
        unknown = sorted(set(self.prompt_names) - set(names))
        if unknown:
            raise ValueError(
                f'decode_head.prompt_names renames {unknown}, which are not '
                f'among the classes {list(names)}'
            )
        if not self.with_background and names[0].lower() == 'background':
            print_log(
                'ZeroShotGroupHead: class 0 is "background" but '
                'decode_head.bg_thresh is None, so it is prompted like any '
                'other class; set bg_thresh to decide background by the '
                'threshold rule',
                logger='current',
                level=logging.WARNING,
            )
        self.class_names = names
        self._cache_key = self._cache_value = None

    @property
    def foreground_names(self) -> tuple[str, ...]:
        """The prompted classes: all, or all but class 0 (background)."""
        if self.class_names is None:
            raise RuntimeError(
                'ZeroShotGroupHead has no class names: add '
                "custom_hooks=[dict(type='ZeroShotClassesHook')] to the "
                "config so that the test dataset's classes are used, set "
                'model.decode_head.class_names, or call '
                'set_zero_shot_classes(model, names)'
            )
        return (
            self.class_names[1:]
            if self.with_background
            else (self.class_names)
        )

    def prompts(self) -> list[str]:
        """``K_fg * T`` sentences, class-major (see ``fill_templates``)."""
        names = [self.prompt_names.get(n, n) for n in self.foreground_names]
        return fill_templates(names, self.templates)

    def class_embeddings(
        self,
        encode_text: Callable[[list[str]], torch.Tensor],
        text_version: object = None,
    ) -> torch.Tensor:
        """Normalised class embeddings ``[K_fg, D]``.

        Each foreground class is put in every template; the ``T`` projected
        embeddings of a class are averaged and L2-normalised (GroupViT,
        Sec. 3.3, after CLIP's prompt ensembling). The result is cached
        under (class names, prompt names, templates, ``text_version``), so
        the text encoder runs once per class set and weights version, not
        once per image or crop.

        Args:
            encode_text: ``list[str] -> [N, D]`` projected text embeddings.
            text_version: hashable; changes whenever the text weights
                change (the segmentor's ``text_weights_version()``).
        """
        names = self.foreground_names
        sentences = self.prompts()
        key = (
            names,
            tuple(sorted(self.prompt_names.items())),
            tuple(sentences),
            text_version,
        )
        if self._cache_key == key:
            return self._cache_value
        with torch.no_grad():
            embeds = torch.cat(
                [
                    encode_text(sentences[i : i + self.text_batch_size])
                    for i in range(0, len(sentences), self.text_batch_size)
                ]
            )
            if embeds.ndim != 2 or embeds.shape[0] != len(sentences):
                raise ValueError(
                    f'encode_text returned {tuple(embeds.shape)} for '
                    f'{len(sentences)} prompts; expected [N, D]'
                )
            embeds = embeds.view(len(names), -1, embeds.shape[-1]).mean(1)
            embeds = F.normalize(embeds, dim=-1)
        self._cache_key, self._cache_value = key, embeds
        return embeds

    # -- the three steps ----------------------------------------------------

    def segment_class_scores(
        self,
        segment_embeds: torch.Tensor,
        image_embed: torch.Tensor,
        text_embeds: torch.Tensor,
        logit_scale: torch.Tensor | float,
    ) -> torch.Tensor:
        """Class probabilities of every final segment (GroupViT Sec. 3.3).

        Cosine similarity of each segment with each class, times the logit
        scale, softmax over classes. With ``topk_classes``, the softmax is
        also taken over the image's ``topk_classes`` best classes only
        (from the whole-image embedding; others get 0) and the two are
        multiplied.

        Args:
            segment_embeds: ``[B, S, D]`` projected final segment tokens.
            image_embed: ``[B, D]`` projected image embedding.
            text_embeds: ``[K_fg, D]`` normalised class embeddings.
            logit_scale: scalar.

        Returns:
            ``[B, S, K_fg]`` scores in ``[0, 1]``.
        """
        text_embeds = text_embeds.to(segment_embeds.dtype)
        segments = F.normalize(segment_embeds, dim=-1)
        logits = logit_scale * segments @ text_embeds.t()
        scores = logits.softmax(dim=-1)
        k = self.topk_classes
        if k is None or k >= text_embeds.shape[0]:
            if k is None:
                return scores
            # every class is among the top k: the restricted softmax is
            # the softmax itself
            return scores * scores
        image = F.normalize(image_embed, dim=-1)
        image_logits = logit_scale * image @ text_embeds.t()
        top = image_logits.topk(k, dim=-1).indices
        keep = torch.zeros_like(image_logits, dtype=torch.bool)
        keep.scatter_(1, top, True)
        restricted = logits.masked_fill(~keep.unsqueeze(1), float('-inf'))
        return restricted.softmax(dim=-1) * scores

    def pixel_segments(
        self,
        output,
        size: tuple[int, int],
        image: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The final segment of every pixel: ``[B, H, W]`` indices.

        The soft assignments of all grouping stages are chained
        (:func:`~mixreorg_mmseg.models.backbones.groupvit.
        chain_assignments`), resized to ``size`` (bilinear), refined by
        ``image`` when the head has a ``refine`` module, and each pixel
        takes its most likely segment, GroupViT's one-hot argmax.

        Args:
            output: the backbone's ``GroupViTOutput`` (``assignments``,
                ``hw_shape``).
            size: ``(H, W)`` of the input.
            image: ``[B, C, H, W]`` the input; needed with ``refine``.

        Raises:
            KeyError: the head refines and no image was given.
        """
        maps = chain_assignments(
            output.assignments, output.hw_shape, 'soft', out_size=size
        )
        if self.refine is not None:
            if image is None:
                raise KeyError(
                    'decode_head.refine needs the input image: the '
                    "segmentor passes it as feats['inputs']"
                )
            maps = self.refine(image, maps)
        return maps.argmax(dim=1)

    def class_logits(
        self,
        segment_index: torch.Tensor,
        scores: torch.Tensor,
        rule_scores: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-pixel logits ``[B, K, H, W]`` whose argmax is the class.

        Args:
            segment_index: ``[B, H, W]`` final segment of each pixel.
            scores: ``[B, S, K_fg]`` from :meth:`segment_class_scores`.
            rule_scores: ``[B, S, K_fg]`` the background rule compares
                with ``bg_thresh`` (None: ``scores``).

        Returns:
            Foreground channels: the pixel's segment's scores. With a
            background, channel 0 is 1 where the background rule (module
            docstring) holds, else 0.
        """
        b, h, w = segment_index.shape
        k_fg = scores.shape[-1]
        index = segment_index.view(b, 1, h * w).expand(b, k_fg, h * w)
        pixel = scores.transpose(1, 2).gather(2, index).view(b, k_fg, h, w)
        if not self.with_background:
            return pixel
        # GroupViT: the threshold is lowered to the image's best score, so
        # its most confident segment always stays foreground
        if rule_scores is None:
            rule_scores = scores
        best = rule_scores.max(dim=2).values  # [B, S]
        thresh = best.max(dim=1).values.clamp(max=self.bg_thresh)
        background = best.gather(1, segment_index.view(b, h * w)).view(
            b, h, w
        ) < thresh.view(b, 1, 1)
        return torch.cat([background.unsqueeze(1).to(pixel.dtype), pixel], 1)

    # -- MMSeg's interface --------------------------------------------------

    def forward(self, feats: dict, size: tuple[int, int]) -> torch.Tensor:
        """Logits ``[B, K, H, W]`` at ``size`` from the segmentor's
        ``feats`` (see :meth:`predict`)."""
        text = self.class_embeddings(
            feats['encode_text'], feats.get('text_version')
        )
        scores = self.segment_class_scores(
            feats['segment_embeds'],
            feats['image_embed'],
            text.to(feats['segment_embeds'].device),
            feats['logit_scale'],
        )
        rule_scores = None
        if self.with_background and self.bg_score == 'cosine':
            rule_scores = (
                F.normalize(feats['segment_embeds'], dim=-1)
                @ text.to(feats['segment_embeds']).t()
            )
        segment_index = self.pixel_segments(
            feats['output'], size, feats.get('inputs')
        )
        return self.class_logits(segment_index, scores, rule_scores)

    def predict(
        self, feats: dict, batch_img_metas: list[dict], test_cfg=None
    ) -> torch.Tensor:
        """Seg logits ``[B, K, H, W]`` at the input (crop) size, as MMSeg
        decode heads return them.

        Args:
            feats: from the segmentor: ``image_embed`` ``[B, D]``,
                ``segment_embeds`` ``[B, S, D]``, ``output`` (the
                backbone's ``GroupViTOutput``), ``encode_text``
                (``list[str] -> [N, D]``), ``text_version`` (hashable) and
                ``logit_scale`` (clamped scalar).
            batch_img_metas: image metas (``img_shape``, ``pad_shape``).
            test_cfg: MMSeg's test config (the segmentor's inference
                reads it; nothing here does).
        """
        return self.forward(feats, input_size(batch_img_metas))


def zero_shot_head(model: nn.Module) -> ZeroShotGroupHead:
    """The ``ZeroShotGroupHead`` of a segmentor, or of a model wrapper
    (DDP) or test-time augmentation model (``tools/test.py --tta``) around
    it.

    Raises:
        TypeError: the segmentor's ``decode_head`` is something else.
    """
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    head = getattr(model, 'decode_head', None)
    if not isinstance(head, ZeroShotGroupHead):
        raise TypeError(
            f'{type(model).__name__}.decode_head is '
            f'{type(head).__name__}, not a ZeroShotGroupHead: set '
            "model.decode_head=dict(type='ZeroShotGroupHead', ...)"
        )
    return head


def set_zero_shot_classes(model: nn.Module, class_names: Sequence[str]):
    """Give a segmentor's zero-shot head its classes (label order).

    The segmentor reads ``num_classes`` / ``out_channels`` from the head
    (its sliding-window inference allocates ``out_channels`` maps).

    Args:
        model: the segmentor, or a wrapper around it (:func:`zero_shot_head`).
        class_names: the classes, background first when the head has a
            ``bg_thresh``.

    Returns:
        The head.
    """
    head = zero_shot_head(model)
    head.set_class_names(class_names)
    return head
