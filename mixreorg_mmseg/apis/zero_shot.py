"""Zero-shot segmentation of one image with classes named on the spot.

``tools/demo.py``, ``tools/visualize_groups.py`` and ``tools/web_demo.py``
use these; they wrap MMSeg's ``init_model`` / ``inference_model`` and set
the zero-shot head's classes, prompt templates and background threshold
(GroupViT, Xu et al., CVPR 2022, Sec. 3.3: any class names can be prompted
at test time).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import Compose

from ..datasets.image_files import read_image
from ..engine.strict_checkpoint_loading import load_model_checkpoint
from ..models.backbones.groupvit import chain_assignments
from ..models.decode_heads import set_zero_shot_classes
from ..models.text_encoders import get_templates
from ..utils.seg_drawing import class_palette

#: ``bg_thresh`` / ``templates`` default of :func:`init_zero_shot_model`
#: and :func:`set_zero_shot_query`: keep the config's (or current) value
KEEP = 'config'


def parse_class_names(text: str) -> list[str]:
    """``'cat, dog,grass'`` -> ``['cat', 'dog', 'grass']``.

    Raises:
        ValueError: no names, an empty name or a name given twice.
    """
    if not text.strip():
        raise ValueError(
            'no class names given: type them comma separated, e.g. '
            '"cat,dog,grass"'
        )
    names = [name.strip() for name in text.split(',')]
    if any(not name for name in names):
        raise ValueError(
            f'class names {text!r}: give a comma-separated list without '
            'empty entries, e.g. "cat,dog,grass"'
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f'class names {text!r} repeat {twice}')
    return names


def init_zero_shot_model(
    config: str | Path | Config,
    checkpoint: str | None,
    class_names: Sequence[str],
    device: str = 'cpu',
    bg_thresh=KEEP,
    cfg_options: dict | None = None,
    strict: bool = True,
):
    """Build a segmentor with a ``ZeroShotGroupHead``, load weights, set
    its classes.

    Args:
        config: config file or object whose model has a zero-shot head.
        checkpoint: weights (MMEngine checkpoint), or None.
        class_names: the classes to find. When the head decides background
            by ``bg_thresh``, ``'background'`` is put first (unless it
            already is): it is class 0 and never prompted.
        device: ``'cpu'``, ``'cuda:0'``...
        bg_thresh: overrides ``model.decode_head.bg_thresh`` (None: no
            background class); by default the config's value is kept.
        cfg_options: config overrides (as ``--cfg-options``).
        strict: refuse a checkpoint whose keys or shapes do not match the
            model (training-only keys such as the MixReorg mixer's are
            dropped, with one log line); False loads what matches and logs
            the rest.

    Returns:
        The model in eval mode, with ``dataset_meta`` (classes, palette)
        for MMSeg's visualizer.

    Raises:
        CheckpointMismatchError: ``strict`` and the checkpoint does not
            fit the model (the message names the file and the config).
        UnsafeCheckpointError / UnreadableCheckpointError: the file needs
            code to unpickle, or is not a readable checkpoint (named).
    """
    from mmseg.apis import init_model

    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    cfg = copy.deepcopy(cfg)  # the caller's config stays as it was
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    head = cfg.model.get('decode_head')
    if not head or head.get('type') != 'ZeroShotGroupHead':
        raise KeyError(
            f'{getattr(cfg, "filename", "config")}: model.decode_head must '
            "be dict(type='ZeroShotGroupHead', ...) for zero-shot inference"
        )
    if 'test_pipeline' not in cfg:
        raise KeyError(
            f'{getattr(cfg, "filename", "config")}: no test_pipeline (the '
            'transforms an image goes through before the model)'
        )
    if bg_thresh != KEEP:
        head['bg_thresh'] = bg_thresh
    # keep the config's class list out of the way: the classes are ours
    head['class_names'] = None
    model = init_model(cfg, None, device='cpu')
    if checkpoint is not None:
        load_model_checkpoint(
            model,
            str(checkpoint),
            config=getattr(cfg, 'filename', None),
            strict=strict,
        )
    model.to(device)
    return set_zero_shot_query(model, class_names)


def set_zero_shot_query(
    model, class_names: Sequence[str], bg_thresh=KEEP, templates=KEEP
):
    """Ask a loaded zero-shot model about other classes, without building
    it again: the classes, optionally the background threshold and the
    prompt templates. Class embeddings are computed at the next forward
    pass (the head caches them per class list and templates).

    Args:
        model: from :func:`init_zero_shot_model`.
        class_names: the classes to find; ``'background'`` is put first
            when the head (after this call) has a background threshold.
        bg_thresh: a number in ``[0, 1]``, None (no background class), or
            ``KEEP`` (the head's current value).
        templates: a name of ``PROMPT_TEMPLATES``, a list of strings with
            one ``{}``, or ``KEEP``.

    Returns:
        ``model``, its ``dataset_meta`` (classes, palette) updated.

    Raises:
        ValueError, KeyError, TypeError: bad classes (fewer than two, a
            repeated or empty name), threshold or templates; the model is
            then left as it was.
    """
    head = model.decode_head
    before = (head.templates, head.bg_thresh)
    if templates == KEEP:
        templates = head.templates
    get_templates(templates)  # raises on an unknown name or a bad list
    if bg_thresh == KEEP:
        bg_thresh = head.bg_thresh
    elif bg_thresh is not None:
        bg_thresh = float(bg_thresh)
        if not 0.0 <= bg_thresh <= 1.0:
            raise ValueError(
                f'background threshold {bg_thresh} must be in [0, 1] (or '
                'None: no background class)'
            )
    head.templates, head.bg_thresh = templates, bg_thresh
    names = list(class_names)
    if head.with_background and names[:1] != ['background']:
        names.insert(0, 'background')
    try:
        set_zero_shot_classes(model, names)
    except (ValueError, TypeError):
        head.templates, head.bg_thresh = before
        raise
    model.dataset_meta = dict(
        classes=tuple(names),
        palette=class_palette(len(names), head.with_background),
    )
    return model


def prepare_image(model, image: str | np.ndarray) -> dict:
    """One image as the model's test step sees it: the config's
    ``test_pipeline`` (without ``LoadAnnotations``; an array is loaded by
    ``LoadImageFromNDArray``), then the model's data preprocessor, as
    ``mmseg.apis.inference_model`` does it. ``model.cfg`` is left as it
    was.

    Args:
        model: from :func:`init_zero_shot_model` (any MMSeg segmentor
            built by ``init_model``).
        image: image path, or ``(H, W, 3)`` BGR array (as ``mmcv.imread``
            reads it).

    Returns:
        ``inputs``: ``(1, 3, H', W')`` float tensor on the model's device;
        ``data_samples``: one ``SegDataSample`` whose metainfo holds the
        original and resized shapes.

    Raises:
        FileNotFoundError / BadImageFileError: ``image`` is a path to no
            file, an empty file or no image (naming it).
    """
    if not isinstance(image, np.ndarray):
        read_image(image)  # a bad file fails here, naming it
    steps = [
        copy.deepcopy(step)
        for step in model.cfg.test_pipeline
        if step.get('type') != 'LoadAnnotations'
    ]
    if isinstance(image, np.ndarray):
        steps[0]['type'] = 'LoadImageFromNDArray'
        sample = dict(img=image)
    else:
        sample = dict(img_path=image)
    sample = Compose(steps)(sample)
    batch = dict(
        inputs=[sample['inputs']], data_samples=[sample['data_samples']]
    )
    return model.data_preprocessor(batch, False)


def zero_shot_predict(model, image):
    """The ``SegDataSample`` of ``image`` (a path or a BGR array; MMSeg's
    ``inference_model``: the config's test pipeline and ``test_cfg``).

    Raises:
        FileNotFoundError / BadImageFileError: ``image`` is a path to no
            file, an empty file or no image (naming it).
    """
    from mmseg.apis import inference_model

    if not isinstance(image, np.ndarray):
        read_image(image)  # a bad file fails here, naming it
    return inference_model(model, image)


def stage_groups(output, size: tuple[int, int]) -> list[np.ndarray]:
    """Per grouping stage, the ``(H, W)`` int group of every pixel: the
    soft assignments chained up to that stage (as the zero-shot head
    chains them), resized to ``size``, argmax. ``output``: the backbone's
    (first image of the batch)."""
    return [
        chain_assignments(
            output.assignments[: i + 1],
            output.hw_shape,
            'soft',
            out_size=size,
        )[0]
        .argmax(0)
        .cpu()
        .numpy()
        for i in range(len(output.assignments))
    ]


@torch.no_grad()
def zero_shot_groups(model, image) -> tuple[list[np.ndarray], np.ndarray]:
    """What the model grouped at each stage, and its class mask, from one
    whole-image forward pass (GroupViT Fig. 4's pictures).

    Args:
        model: from :func:`init_zero_shot_model`.
        image: image path or array.

    Returns:
        ``groups``: per grouping stage, ``(H, W)`` int array: the stage's
        group of every pixel (assignments chained up to that stage,
        resized to the original image, argmax); ``mask``: ``(H, W)``
        class indices, at the original size too.
    """
    data = prepare_image(model, image)
    inputs, samples = data['inputs'], data['data_samples']
    meta = samples[0].metainfo
    ori_shape = tuple(meta['ori_shape'][:2])
    # the backbone's output is caught on its way to the head, so that the
    # image is encoded once for the groups and the classes
    outputs = []
    hook = model.backbone.register_forward_hook(
        lambda module, args, output: outputs.append(output)
    )
    try:
        logits = model.encode_decode(inputs, [meta])
    finally:
        hook.remove()
    groups = stage_groups(outputs[-1], ori_shape)
    result = model.postprocess_result(logits, samples)[0]
    mask = result.pred_sem_seg.data[0].cpu().numpy()
    return groups, mask
