"""Pictures of zero-shot results: class masks with a legend, and groups.

What ``tools/demo.py``, ``tools/visualize_groups.py`` and
``tools/web_demo.py`` draw. The class
mask overlay and all text and boxes are drawn by MMSeg's
``SegLocalVisualizer`` (imported when first used: this package's ``utils``
must not import ``mmseg`` at module level); group maps are blended here,
since the visualizer knows classes, not the grouping blocks' groups.
Images are RGB ``uint8`` ``(H, W, 3)`` arrays.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np

_WHITE = (255, 255, 255)


def distinct_colors(n: int, offset: float = 0.0) -> list[list[int]]:
    """``n`` RGB colours with well separated hues (golden-ratio steps),
    the same for the same ``n`` and ``offset``."""
    colors = []
    for i in range(n):
        hue = (offset + i * 0.618033988749895) % 1.0
        value = 0.95 if i % 2 == 0 else 0.75
        r, g, b = colorsys.hsv_to_rgb(hue, 0.7, value)
        colors.append([int(round(255 * c)) for c in (r, g, b)])
    return colors


def class_palette(num_classes: int, with_background: bool) -> list:
    """A palette for ``num_classes`` classes; background (class 0, when
    there is one) is black."""
    if with_background:
        return [[0, 0, 0]] + distinct_colors(num_classes - 1)
    return distinct_colors(num_classes)


def boundaries(label_map: np.ndarray) -> np.ndarray:
    """Boolean ``(H, W)``: pixels whose right or lower neighbour has
    another label."""
    edge = np.zeros(label_map.shape, dtype=bool)
    edge[:, :-1] |= label_map[:, :-1] != label_map[:, 1:]
    edge[:-1, :] |= label_map[:-1, :] != label_map[1:, :]
    return edge


def draw_groups(
    image: np.ndarray,
    group_map: np.ndarray,
    palette: Sequence[Sequence[int]],
    alpha: float = 0.5,
) -> np.ndarray:
    """``image`` with every group in its colour and white boundaries.

    Args:
        image: ``(H, W, 3)`` RGB.
        group_map: ``(H, W)`` group index of every pixel.
        palette: one colour per group index.
        alpha: opacity of the colours.
    """
    colors = np.asarray(palette, dtype=np.float32)[group_map]
    drawn = (1 - alpha) * image.astype(np.float32) + alpha * colors
    drawn[boundaries(group_map)] = _WHITE
    return drawn.round().astype(np.uint8)


def upscale(image: np.ndarray, label_maps, min_side: int = 256):
    """Enlarge small images (and their label maps, nearest) by an integer
    factor so that the short side reaches ``min_side``: text and
    boundaries stay readable on tiny test images."""
    factor = int(np.ceil(min_side / min(image.shape[:2])))
    if factor <= 1:
        return image, list(label_maps)
    big = image.repeat(factor, 0).repeat(factor, 1)
    return big, [m.repeat(factor, 0).repeat(factor, 1) for m in label_maps]


def _visualizer(alpha: float = 0.5):
    from mmseg.visualization import SegLocalVisualizer

    return SegLocalVisualizer(name='mixreorg_seg_drawing', alpha=alpha)


def draw_class_mask(
    image: np.ndarray,
    mask: np.ndarray,
    classes: Sequence[str],
    palette: Sequence[Sequence[int]],
    alpha: float = 0.5,
) -> np.ndarray:
    """The class mask overlaid on ``image`` by MMSeg's visualizer.

    Args:
        image: ``(H, W, 3)`` RGB.
        mask: ``(H, W)`` class index of every pixel.
        classes, palette: names and colours, by class index.
        alpha: opacity of the mask.
    """
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    sample = SegDataSample()
    sample.pred_sem_seg = PixelData(data=torch.from_numpy(mask[None]).long())
    visualizer = _visualizer(alpha)
    visualizer.set_dataset_meta(
        classes=list(classes), palette=[list(c) for c in palette]
    )
    visualizer.add_datasample(
        'class_mask',
        image,
        sample,
        draw_gt=False,
        show=False,
        with_labels=False,
    )
    return visualizer.get_image()


def legend(
    height: int,
    classes: Sequence[str],
    palette: Sequence[Sequence[int]],
    shares: Sequence[float] | None = None,
) -> np.ndarray:
    """A white ``(>= height, W, 3)`` panel: one colour box and name a
    class, with its share of the pixels when ``shares`` is given."""
    row = int(np.clip(height / max(len(classes), 1), 14, 28))
    texts = [
        name if shares is None else f'{name}  {100 * share:.1f}%'
        for name, share in zip(
            classes, shares or [0.0] * len(classes), strict=True
        )
    ]
    font = max(8, int(row * 0.55))
    width = 2 * row + int(font * 0.8 * max(len(t) for t in texts)) + row
    panel_height = max(height, row * len(classes) + row)
    visualizer = _visualizer()
    visualizer.set_image(np.full((panel_height, width, 3), 255, np.uint8))
    tops = row // 2 + row * np.arange(len(classes))
    boxes = np.stack(
        [
            np.full(len(classes), row // 2),
            tops + 2,
            np.full(len(classes), row // 2 + row - 4),
            tops + row - 2,
        ],
        axis=1,
    )
    visualizer.draw_bboxes(
        boxes,
        edge_colors='black',
        face_colors=[tuple(int(v) for v in c) for c in palette],
        line_widths=1,
        alpha=1.0,
    )
    visualizer.draw_texts(
        texts,
        np.stack([np.full(len(classes), 2 * row), tops + row // 2], 1),
        font_sizes=font,
        colors='black',
        vertical_alignments='center',
    )
    return visualizer.get_image()


def titled_row(
    panels: Sequence[np.ndarray], titles: Sequence[str], gap: int = 8
) -> np.ndarray:
    """Panels side by side on white, each with its title above it."""
    height = max(p.shape[0] for p in panels)
    title_height = 28
    width = sum(p.shape[1] for p in panels) + gap * (len(panels) + 1)
    canvas = np.full(
        (height + title_height + gap, width, 3), 255, dtype=np.uint8
    )
    lefts = []
    x = gap
    for panel in panels:
        canvas[title_height : title_height + panel.shape[0], x:][
            :, : panel.shape[1]
        ] = panel
        lefts.append(x)
        x += panel.shape[1] + gap
    visualizer = _visualizer()
    visualizer.set_image(canvas)
    visualizer.draw_texts(
        list(titles),
        np.array([[left, title_height // 2] for left in lefts]),
        font_sizes=13,
        colors='black',
        vertical_alignments='center',
    )
    return visualizer.get_image()


def class_shares(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """``[K]``: each class's share of the pixels of the ``(H, W)`` class
    index ``mask`` (they sum to 1)."""
    return np.bincount(mask.ravel(), minlength=num_classes) / mask.size


def format_shares(classes: Sequence[str], shares: Sequence[float]) -> str:
    """``'disc 12.5%, square 3.1%'``: the classes found (share above 0)."""
    return ', '.join(
        f'{name} {100 * share:.1f}%'
        for name, share in zip(classes, shares, strict=True)
        if share > 0
    )


def class_panels(
    image: np.ndarray,
    mask: np.ndarray,
    classes,
    palette,
    opacity: float,
) -> tuple[list[np.ndarray], list[str], np.ndarray]:
    """The class mask drawn on ``image`` and its legend, their titles, and
    each class's share of the pixels (``[K]``)."""
    shares = class_shares(mask, len(classes))
    panels = [
        draw_class_mask(image, mask, classes, palette, opacity),
        legend(image.shape[0], classes, palette, shares.tolist()),
    ]
    return panels, ['classes', 'class: share of pixels'], shares


def stage_panels(
    image: np.ndarray,
    groups: Sequence[np.ndarray],
    num_groups: Sequence[int],
    opacity: float,
) -> tuple[list[np.ndarray], list[str]]:
    """Each grouping stage's groups drawn on ``image``, and their titles
    (``'stage 1: 5 of 8 groups'``: the groups that own a pixel).

    Args:
        image: ``(H, W, 3)`` RGB.
        groups: per stage, the ``(H, W)`` group index of every pixel
            (``apis.zero_shot_groups``).
        num_groups: per stage, its number of groups (the backbone's
            ``num_output_groups``).
        opacity: of the group colours.
    """
    panels, titles = [], []
    for stage, (group_map, count) in enumerate(
        zip(groups, num_groups, strict=True), start=1
    ):
        # another hue offset per stage: stage 2's groups are not stage 1's
        colors = distinct_colors(int(count), offset=0.37 * stage)
        panels.append(draw_groups(image, group_map, colors, opacity))
        used = len(np.unique(group_map))
        titles.append(f'stage {stage}: {used} of {int(count)} groups')
    return panels, titles


def write_rgb(picture: np.ndarray, path: str) -> None:
    """Write an RGB picture (e.g. :func:`titled_row`'s) to ``path``,
    creating its folder."""
    import os
    import os.path as osp

    import mmcv

    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    mmcv.imwrite(mmcv.rgb2bgr(picture), path)
