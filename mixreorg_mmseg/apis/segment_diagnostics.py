"""Why a zero-shot mIoU is what it is: the model's segments, measured.

mIoU mixes three abilities that fail for different reasons: recognising
what an image shows, cutting it into segments that follow the objects,
and telling which segment is which class (background included). These
numbers take them apart on a labelled split (MMSeg layout), image by
image, with the zero-shot head's own rules (GroupViT Sec. 3.3: segments
from the chained soft assignments, argmax per pixel; class scores by
softmax over the prompted classes):

* ``image_top1``: fraction of images whose whole-image embedding ranks
  first a class that is in the label map (recognition, no grouping);
* ``groups_used``: per grouping stage, the mean number of groups that own
  at least one pixel (collapse shows as ~1);
* ``segments_per_image`` and ``purity``: final segments per image, and the
  mean over segments of the share of their pixels that the segment's
  majority class holds;
* ``fg_segment_acc``: over segments whose majority class is a foreground
  class, the fraction whose best-scoring class is that class;
* ``bg_segment_score`` / ``fg_segment_score``: mean best class score of
  background-majority and foreground-majority segments: GroupViT's
  background threshold can only work when the first is lower;
* ``grouping_bound``: the mIoU (in %, IoUMetric's mean over the classes
  that occur) when every final segment takes its majority class: the best
  any rule for naming segments can score with these segments, so the gap
  to the measured mIoU is what recognition loses, and the gap from the
  bound to 100 what the grouping loses.

The final segments are the head's own (:meth:`~mixreorg_mmseg.models.
decode_heads.ZeroShotGroupHead.pixel_segments`: with its refinement when
it has one) at the input's size, resized to the label map's by nearest
neighbour; the earlier stages' groups are the chained soft assignments'
argmax.

``tools/analysis_tools/segment_diagnostics.py`` prints them;
``tools/benchmark/synthetic_world_study.py`` reports them per run.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .zero_shot import prepare_image, stage_groups


def image_measures(
    groups_per_stage: Sequence[np.ndarray],
    label: np.ndarray,
    image_scores: np.ndarray,
    segment_probs: np.ndarray,
    with_background: bool,
    ignore_index: int = 255,
    num_classes: int | None = None,
) -> dict:
    """The measures of one image.

    Args:
        groups_per_stage: per grouping stage, ``(H, W)`` group of every pixel
            (the last: final segment index).
        label: ``(H, W)`` class indices.
        image_scores: ``[K_fg]`` whole-image similarity to each prompted
            class.
        segment_probs: ``[S, K_fg]`` class scores of the final segments.
        with_background: class 0 is background (not prompted).
        ignore_index: label value that no measure counts.
        num_classes: all classes of ``label`` (background included); when
            given, the result also holds ``bound_confusion``.

    Returns:
        dict: ``image_hit`` (bool), ``groups_used`` (list per stage),
        ``segments`` (int), per-segment lists ``purity``, ``fg_hit``,
        ``bg_score``, ``fg_score``, and with ``num_classes``
        ``bound_confusion``: ``[K, K]`` pixel counts of (label, the
        majority label of the pixel's segment).

    Raises:
        ValueError: with ``num_classes``, a label outside
            ``[0, num_classes)`` that is not ``ignore_index``.
    """
    offset = 1 if with_background else 0
    valid = label != ignore_index
    present = set(np.unique(label[valid]).tolist()) - (
        {0} if offset else set()
    )
    final = groups_per_stage[-1]
    out = dict(
        image_hit=int(np.argmax(image_scores)) + offset in present,
        groups_used=[len(np.unique(g[valid])) for g in groups_per_stage],
        purity=[],
        fg_hit=[],
        bg_score=[],
        fg_score=[],
    )
    ids = np.unique(final[valid])
    out['segments'] = len(ids)
    if num_classes is not None:
        bad = label[valid][(label[valid] < 0) | (label[valid] >= num_classes)]
        if bad.size:
            raise ValueError(
                f'label value {int(bad[0])} outside the {num_classes} '
                f'classes (ignore_index {ignore_index})'
            )
        majority_map = np.zeros_like(label)
    for s in ids:
        values, counts = np.unique(
            label[(final == s) & valid], return_counts=True
        )
        majority = int(values[counts.argmax()])
        if num_classes is not None:
            majority_map[final == s] = majority
        out['purity'].append(counts.max() / counts.sum())
        top = float(segment_probs[s].max())
        if offset and majority == 0:
            out['bg_score'].append(top)
        else:
            out['fg_score'].append(top)
            out['fg_hit'].append(
                int(segment_probs[s].argmax()) + offset == majority
            )
    if num_classes is not None:
        pairs = label[valid].astype(np.int64) * num_classes + majority_map[
            valid
        ].astype(np.int64)
        out['bound_confusion'] = np.bincount(
            pairs, minlength=num_classes**2
        ).reshape(num_classes, num_classes)
    return out


def confusion_miou(confusion: np.ndarray) -> float:
    """mIoU in % of a ``[K, K]`` (label, prediction) pixel-count matrix:
    the mean IoU over the classes that occur in either (as IoUMetric,
    whose classes with an empty union are NaN and left out)."""
    hits = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - hits
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = hits / union
    return float(100 * np.nanmean(iou)) if (union > 0).any() else float('nan')


def summarize(measures: Sequence[dict]) -> dict:
    """Means over images (and over all their segments) of
    :func:`image_measures` results; ``grouping_bound`` when every one
    holds ``bound_confusion``."""

    def mean(values):
        return float(np.mean(values)) if len(values) else float('nan')

    def pooled(key):
        return [v for m in measures for v in m[key]]

    bound = float('nan')
    if measures and all('bound_confusion' in m for m in measures):
        bound = confusion_miou(sum(m['bound_confusion'] for m in measures))
    return dict(
        num_images=len(measures),
        image_top1=mean([m['image_hit'] for m in measures]),
        groups_used=np.mean(
            np.array([m['groups_used'] for m in measures]), axis=0
        ).tolist(),
        segments_per_image=mean([m['segments'] for m in measures]),
        purity=mean(pooled('purity')),
        fg_segment_acc=mean(pooled('fg_hit')),
        bg_segment_score=mean(pooled('bg_score')),
        fg_segment_score=mean(pooled('fg_score')),
        grouping_bound=bound,
    )


@torch.no_grad()
def segment_diagnostics(
    model,
    images: Sequence[str],
    label_maps: Sequence[np.ndarray],
    ignore_index: int = 255,
) -> dict:
    """The numbers of this module's docstring over ``images``.

    Args:
        model: from :func:`~.zero_shot.init_zero_shot_model` (its head's
            classes in label order; with ``bg_thresh`` set, class 0 is
            background and not prompted).
        images: image paths.
        label_maps: ``(H, W)`` int label maps of the images (class
            indices, ``ignore_index`` ignored).

    Returns:
        :func:`summarize`'s dict.
    """
    if len(images) != len(label_maps) or not images:
        raise ValueError(
            f'{len(images)} images for {len(label_maps)} label maps: give '
            'one label map per image, at least one'
        )
    head = model.decode_head
    text = head.class_embeddings(
        model.encode_text, model.text_weights_version()
    )
    scale = model.scale(model.logit_scale)
    measures = []
    for path, label in zip(images, label_maps, strict=True):
        label = np.asarray(label)
        inputs = prepare_image(model, path)['inputs']
        feats = model.extract_feat(inputs)
        output = feats['output']
        groups = stage_groups(output, label.shape[:2])
        final = head.pixel_segments(output, inputs.shape[-2:], inputs)
        groups[-1] = (
            F.interpolate(
                final[:1, None].float(), size=label.shape[:2], mode='nearest'
            )[0, 0]
            .long()
            .cpu()
            .numpy()
        )
        image = F.normalize(feats['image_embed'][0], dim=-1)
        segments = F.normalize(feats['segment_embeds'][0], dim=-1)
        text = text.to(image.dtype)
        try:
            measure = image_measures(
                groups,
                label,
                (image @ text.t()).float().cpu().numpy(),
                (scale * segments @ text.t())
                .softmax(-1)
                .float()
                .cpu()
                .numpy(),
                head.with_background,
                ignore_index,
                head.num_classes,
            )
        except ValueError as error:
            raise ValueError(f'{path}: {error}') from error
        measures.append(measure)
    return summarize(measures)


def folder_split(img_dir: str, ann_dir: str, img_suffix='.jpg'):
    """Image paths and label maps of an MMSeg-layout folder pair (labels
    ``NAME.png`` beside images ``NAME{img_suffix}``); a missing label
    map is a FileNotFoundError naming it."""
    import os
    import os.path as osp

    from PIL import Image

    names = sorted(f for f in os.listdir(img_dir) if f.endswith(img_suffix))
    if not names:
        raise FileNotFoundError(f'no *{img_suffix} images in {img_dir}')
    images, labels = [], []
    for name in names:
        ann = osp.join(ann_dir, name[: -len(img_suffix)] + '.png')
        if not osp.isfile(ann):
            raise FileNotFoundError(f'{ann}: label map of {name} missing')
        images.append(osp.join(img_dir, name))
        labels.append(np.array(Image.open(ann)))
    return images, labels
