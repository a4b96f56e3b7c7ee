"""The CC12M training augmentation on a batch of image tensors, on any
device: random resized crop, flip, colour jitter, RandAugment and random
erasing with the rules of mmpretrain's transforms (the CPU pipeline of
``configs/_base_/datasets/cc12m_image_captions.py``).

Random parameters are drawn on the CPU from torch's default generator
(seeded before every training step by ``IterationSeedHook``), as (B, ...)
tensors: :func:`draw_crop_boxes`, :class:`ColorJitterParams`,
:class:`RandAugmentParams`, :class:`ErasingParams`. The ops apply them to
a float32 (B, 3, H, W) RGB batch holding integer values in [0, 255], and
round or truncate after each op as the uint8 CPU ops do, so each op sees
the values its CPU counterpart would.

torchvision's ``transforms.v2.functional`` applies one parameter to a
whole batch; here every sample has its own, so the per-sample ops are
written as broadcast formulas (the same formulas as PIL / mmcv), and
``equalize`` (parameter-free) is torchvision's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

#: ``mmpretrain`` RandAugment ops implemented here, with the defaults of
#: their mmpretrain classes: probability of applying, probability of a
#: negative magnitude, interpolation of the geometric ones.
RAND_AUGMENT_OPS = {
    'AutoContrast': dict(prob=0.5, random_negative_prob=0.0),
    'Equalize': dict(prob=0.5, random_negative_prob=0.0),
    'Invert': dict(prob=0.5, random_negative_prob=0.0),
    'Rotate': dict(
        prob=0.5, random_negative_prob=0.5, interpolation='nearest'
    ),
    'Posterize': dict(prob=0.5, random_negative_prob=0.0),
    'Solarize': dict(prob=0.5, random_negative_prob=0.0),
    'SolarizeAdd': dict(prob=0.5, random_negative_prob=0.0, thr=128),
    'ColorTransform': dict(prob=0.5, random_negative_prob=0.5),
    'Contrast': dict(prob=0.5, random_negative_prob=0.5),
    'Brightness': dict(prob=0.5, random_negative_prob=0.5),
    'Sharpness': dict(prob=0.5, random_negative_prob=0.5),
    'Shear': dict(
        prob=0.5,
        random_negative_prob=0.5,
        interpolation='bicubic',
        direction='horizontal',
    ),
    'Translate': dict(
        prob=0.5,
        random_negative_prob=0.5,
        interpolation='nearest',
        direction='horizontal',
    ),
}


def _uniform(shape, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, dtype=torch.float64)


# -- random resized crop -----------------------------------------------------


def draw_crop_boxes(
    heights: torch.Tensor,
    widths: torch.Tensor,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    max_attempts: int = 10,
) -> torch.Tensor:
    """Crop boxes of mmpretrain's ``RandomResizedCrop.rand_crop_params``.

    Up to ``max_attempts`` draws of an area fraction ~ U(scale) and a
    log-uniform aspect ratio (w / h) in ``ratio``; the first that fits is
    taken, at a uniform offset; none fitting, the central crop clamped to
    ``ratio``.

    Args:
        heights, widths: (B,) image sizes in pixels.

    Returns:
        (B, 4) int64 ``top, left, height, width``.
    """
    h = heights.double()[:, None]
    w = widths.double()[:, None]
    num = h.shape[0]
    area = _uniform((num, max_attempts), *scale) * h * w
    aspect = torch.exp(
        _uniform((num, max_attempts), math.log(ratio[0]), math.log(ratio[1]))
    )
    tw = torch.round(torch.sqrt(area * aspect))
    th = torch.round(torch.sqrt(area / aspect))
    fits = (tw > 0) & (tw <= w) & (th > 0) & (th <= h)
    first = fits.double().argmax(1, keepdim=True)
    found = fits.any(1)
    tw = tw.gather(1, first)[:, 0]
    th = th.gather(1, first)[:, 0]
    h, w = h[:, 0], w[:, 0]
    top = torch.floor(torch.rand(num, dtype=torch.float64) * (h - th + 1))
    left = torch.floor(torch.rand(num, dtype=torch.float64) * (w - tw + 1))
    # fallback: the central crop, its aspect clamped to the range
    in_ratio = w / h
    cw = torch.where(
        in_ratio > ratio[1], torch.round(h * ratio[1]), w.clone()
    )
    ch = torch.where(in_ratio < ratio[0], torch.round(w / ratio[0]), h)
    cw = torch.where(in_ratio < ratio[0], w, cw)
    ct = torch.div(h - ch, 2, rounding_mode='floor')
    cl = torch.div(w - cw, 2, rounding_mode='floor')
    boxes = torch.stack(
        [
            torch.where(found, top, ct),
            torch.where(found, left, cl),
            torch.where(found, th, ch),
            torch.where(found, tw, cw),
        ],
        dim=1,
    )
    return boxes.long()


def crop_and_resize(
    images: Sequence[torch.Tensor], boxes: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """Crop each (3, H_i, W_i) uint8 image to its box and resize it to
    ``size`` bilinearly with antialiasing (PIL's bilinear resize, which
    the CPU pipeline's ``backend='pillow'`` uses).

    Returns:
        (B, 3, size[0], size[1]) float32, rounded to integers in [0, 255].
    """
    out = []
    for image, (top, left, height, width) in zip(
        images, boxes.tolist(), strict=True
    ):
        crop = image[None, :, top : top + height, left : left + width]
        out.append(
            F.interpolate(
                crop.float(),
                size=size,
                mode='bilinear',
                align_corners=False,
                antialias=True,
            )
        )
    return torch.cat(out).round_().clamp_(0, 255)


# -- flip --------------------------------------------------------------------


def flip(images: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
    """Mirror the (B, 3, H, W) images whose (B,) bool ``flags`` are set
    (left-right, as MMCV's ``RandomFlip`` with ``direction='horizontal'``)."""
    flags = flags.to(images.device)[:, None, None, None]
    return torch.where(flags, images.flip(-1), images)


# -- colour: shared formulas -------------------------------------------------


def _per_sample(values: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    return values.to(images.device, torch.float32)[:, None, None, None]


def _luma(images: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) grey levels of RGB images, rounded (PIL's ``L`` and
    OpenCV's ``BGR2GRAY``: 0.299 R + 0.587 G + 0.114 B)."""
    r, g, b = images.unbind(1)
    return torch.floor(0.299 * r + 0.587 * g + 0.114 * b + 0.5)[:, None]


def _blend(
    images: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor
) -> torch.Tensor:
    """``degenerate + factor * (images - degenerate)`` clamped to [0, 255]
    and truncated, as PIL's ``ImageEnhance`` and mmcv's ``cv2.addWeighted``
    on float32 followed by ``astype(uint8)``."""
    out = degenerate + _per_sample(factor, images) * (images - degenerate)
    return out.clamp_(0, 255).floor_()


def adjust_brightness(images, factor):
    """(B, 3, H, W), (B,) factors: blend with black."""
    return _blend(images, torch.zeros_like(images), factor)


def adjust_contrast(images, factor):
    """Blend with the image's mean grey level (rounded)."""
    mean = _luma(images).mean((1, 2, 3), keepdim=True)
    return _blend(images, torch.floor(mean + 0.5), factor)


def adjust_saturation(images, factor):
    """Blend with the image's grey version (PIL ``ImageEnhance.Color``)."""
    return _blend(images, _luma(images), factor)


# -- colour jitter -----------------------------------------------------------


@dataclass
class ColorJitterParams:
    """Per-sample draws of mmpretrain's ``ColorJitter`` (no hue).

    Attributes:
        order: (B, 4) int64, a permutation of (brightness, contrast,
            saturation, hue); hue is off, so only the order of the first
            three matters.
        brightness, contrast, saturation: (B,) float64 factors.
    """

    order: torch.Tensor
    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor

    @classmethod
    def draw(
        cls, num: int, brightness: float, contrast: float, saturation: float
    ) -> ColorJitterParams:
        """Factors ~ U(max(0, 1 - v), 1 + v) for each of the three."""
        return cls(
            order=torch.argsort(torch.rand(num, 4), dim=1),
            brightness=_uniform(num, max(0.0, 1 - brightness), 1 + brightness),
            contrast=_uniform(num, max(0.0, 1 - contrast), 1 + contrast),
            saturation=_uniform(num, max(0.0, 1 - saturation), 1 + saturation),
        )


def color_jitter(images: torch.Tensor, params: ColorJitterParams):
    """Brightness, contrast and saturation in each sample's order."""
    ops = (
        (adjust_brightness, params.brightness),
        (adjust_contrast, params.contrast),
        (adjust_saturation, params.saturation),
    )
    for position in range(params.order.shape[1]):
        for index, (op, factors) in enumerate(ops):
            chosen = torch.nonzero(params.order[:, position] == index)[:, 0]
            if len(chosen):
                dev = chosen.to(images.device)
                images[dev] = op(images[dev], factors[chosen])
    return images


# -- RandAugment ops ---------------------------------------------------------


def _auto_contrast(images, magnitude, op):
    low = images.amin((2, 3), keepdim=True)
    high = images.amax((2, 3), keepdim=True)
    span = high - low
    scaled = ((images - low) * (255.0 / span.clamp(min=1))).clamp(0, 255)
    return torch.where(span > 0, scaled.floor(), images)


def _equalize(images, magnitude, op):
    return TF.equalize(images.to(torch.uint8)).float()


def _invert(images, magnitude, op):
    return 255.0 - images


def _posterize(images, magnitude, op):
    shift = 8 - torch.ceil(magnitude).clamp(0, 8)
    step = _per_sample(2.0**shift, images)
    return torch.floor(images / step) * step


def _solarize(images, magnitude, op):
    threshold = _per_sample(magnitude, images)
    return torch.where(images < threshold, images, 255.0 - images)


def _solarize_add(images, magnitude, op):
    added = (images + _per_sample(magnitude, images)).clamp(max=255).floor()
    return torch.where(images < op['thr'], added, images)


def _color(images, magnitude, op):
    grey = _luma(images)
    out = grey + _per_sample(1 + magnitude, images) * (images - grey)
    return out.round().clamp(0, 255)  # cv2.addWeighted on uint8 rounds


def _contrast(images, magnitude, op):
    return adjust_contrast(images, 1 + magnitude)


def _brightness(images, magnitude, op):
    return adjust_brightness(images, 1 + magnitude)


_SHARPEN = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]])


def _sharpness(images, magnitude, op):
    """Blend with the image smoothed by mmcv's 3 x 3 kernel (OpenCV's
    ``filter2D``: reflect-101 borders, rounded to uint8)."""
    kernel = (_SHARPEN / 13).to(images)[None, None].expand(3, 1, 3, 3)
    padded = F.pad(images, (1, 1, 1, 1), mode='reflect')
    smooth = F.conv2d(padded, kernel, groups=3).round().clamp(0, 255)
    return _blend(images, smooth, 1 + magnitude)


def warp_affine(
    images: torch.Tensor,
    matrices: torch.Tensor,
    interpolation: str,
    fill: torch.Tensor,
) -> torch.Tensor:
    """OpenCV's ``warpAffine`` of each image by its (2, 3) pixel-space
    forward matrix (``dst(x, y) = src(M^-1 (x, y))``), constant ``fill``
    (3,) outside.

    Sampling ``images - fill`` with zero padding and adding ``fill`` back
    is sampling the image extended by the constant, for every
    interpolation, as ``BORDER_CONSTANT`` does.

    Args:
        images: (B, 3, H, W) float32.
        matrices: (B, 2, 3) float64.
        interpolation: 'nearest', 'bilinear' or 'bicubic'.

    Returns:
        (B, 3, H, W) float32, rounded and clamped to [0, 255].
    """
    num, _, height, width = images.shape
    full = torch.zeros(num, 3, 3, dtype=torch.float64)
    full[:, :2] = matrices
    full[:, 2, 2] = 1
    inverse = torch.linalg.inv(full)[:, :2].to(images.device, torch.float32)
    ys, xs = torch.meshgrid(
        torch.arange(height, device=images.device, dtype=torch.float32),
        torch.arange(width, device=images.device, dtype=torch.float32),
        indexing='ij',
    )
    points = torch.stack([xs, ys, torch.ones_like(xs)], -1)  # H, W, 3
    source = torch.einsum('bij,hwj->bhwi', inverse, points)
    size = torch.tensor([width, height], device=images.device)
    grid = (2 * source + 1) / size - 1  # pixel centres, align_corners=False
    fill = fill.to(images)[None, :, None, None]
    out = F.grid_sample(
        images - fill,
        grid,
        mode=interpolation,
        padding_mode='zeros',
        align_corners=False,
    )
    return (out + fill).round_().clamp_(0, 255)


def _rotate(images, magnitude, op):
    """mmcv's ``imrotate`` about ((W - 1) / 2, (H - 1) / 2)."""
    height, width = images.shape[2:]
    cx, cy = (width - 1) * 0.5, (height - 1) * 0.5
    angle = torch.deg2rad(-magnitude.double())  # OpenCV: counter-clockwise
    cos, sin = torch.cos(angle), torch.sin(angle)
    matrices = torch.stack(
        [
            torch.stack([cos, sin, (1 - cos) * cx - sin * cy], -1),
            torch.stack([-sin, cos, sin * cx + (1 - cos) * cy], -1),
        ],
        1,
    )
    return warp_affine(images, matrices, op['interpolation'], op['fill'])


def _shear(images, magnitude, op):
    """mmcv's ``imshear``: about the top-left corner."""
    matrices = torch.zeros(len(magnitude), 2, 3, dtype=torch.float64)
    matrices[:, 0, 0] = matrices[:, 1, 1] = 1
    if op['direction'] == 'horizontal':
        matrices[:, 0, 1] = magnitude.double()
    else:
        matrices[:, 1, 0] = magnitude.double()
    return warp_affine(images, matrices, op['interpolation'], op['fill'])


def _translate(images, magnitude, op):
    """mmcv's ``imtranslate`` by ``magnitude`` times the width / height."""
    height, width = images.shape[2:]
    matrices = torch.zeros(len(magnitude), 2, 3, dtype=torch.float64)
    matrices[:, 0, 0] = matrices[:, 1, 1] = 1
    if op['direction'] == 'horizontal':
        matrices[:, 0, 2] = magnitude.double() * width
    else:
        matrices[:, 1, 2] = magnitude.double() * height
    return warp_affine(images, matrices, op['interpolation'], op['fill'])


#: The tensor implementation of each op in :data:`RAND_AUGMENT_OPS`:
#: ``f(images (n, 3, H, W), magnitude (n,), op record) -> images``.
OP_FUNCTIONS = {
    'AutoContrast': _auto_contrast,
    'Equalize': _equalize,
    'Invert': _invert,
    'Rotate': _rotate,
    'Posterize': _posterize,
    'Solarize': _solarize,
    'SolarizeAdd': _solarize_add,
    'ColorTransform': _color,
    'Contrast': _contrast,
    'Brightness': _brightness,
    'Sharpness': _sharpness,
    'Shear': _shear,
    'Translate': _translate,
}


def parse_rand_augment_policies(
    policies: Sequence[dict], fill: Sequence[float]
) -> list[dict]:
    """mmpretrain RandAugment policy dicts (``type`` with or without the
    ``mmpretrain.`` scope, ``magnitude_range``, and the options of the op's
    class) as the op records :func:`rand_augment` applies.

    Raises:
        ValueError: an op not implemented here, or an option it does not
            take (naming the policy).
    """
    ops = []
    for i, policy in enumerate(policies):
        policy = dict(policy)
        name = str(policy.pop('type', '')).split('.')[-1]
        if name not in RAND_AUGMENT_OPS:
            raise ValueError(
                f'rand_augment.policies[{i}]: {name!r} is not one of the ops '
                f'implemented on tensors: {sorted(RAND_AUGMENT_OPS)}'
            )
        op = dict(RAND_AUGMENT_OPS[name], name=name)
        op['fill'] = torch.tensor(
            policy.pop('pad_val', fill), dtype=torch.float32
        ).expand(3)
        op['magnitude_range'] = policy.pop('magnitude_range', None)
        unknown = set(policy) - set(op)
        if unknown:
            raise ValueError(
                f'rand_augment.policies[{i}] ({name}): options '
                f'{sorted(unknown)} are not supported; known: '
                f'{sorted(set(op) - {"name"})}'
            )
        op.update(policy)
        ops.append(op)
    return ops


@dataclass
class RandAugmentParams:
    """Per-sample draws of mmpretrain's ``RandAugment``.

    Attributes:
        ops: (B, N) int64, the op of each of the N slots (with
            replacement).
        applied: (B, N) bool, each op's own ``prob``.
        magnitude: (B, N) float64, the op's value: magnitude level ~
            N(level, std) clipped to [0, total_level], mapped linearly
            onto its ``magnitude_range``, negated with its
            ``random_negative_prob``.
    """

    ops: torch.Tensor
    applied: torch.Tensor
    magnitude: torch.Tensor

    @classmethod
    def draw(
        cls,
        num: int,
        ops: Sequence[dict],
        num_policies: int,
        magnitude_level: float,
        magnitude_std: float,
        total_level: float,
    ) -> RandAugmentParams:
        chosen = torch.randint(len(ops), (num, num_policies))
        prob = torch.tensor([op['prob'] for op in ops], dtype=torch.float64)
        negative = torch.tensor(
            [op['random_negative_prob'] for op in ops], dtype=torch.float64
        )
        low = torch.tensor(
            [(op['magnitude_range'] or (0, 0))[0] for op in ops],
            dtype=torch.float64,
        )
        high = torch.tensor(
            [(op['magnitude_range'] or (0, 0))[1] for op in ops],
            dtype=torch.float64,
        )
        level = torch.full((num, num_policies), float(magnitude_level))
        if magnitude_std > 0:
            level = level.double() + magnitude_std * torch.randn(
                num, num_policies, dtype=torch.float64
            )
            level = level.clamp(0, total_level)
        low, high = low[chosen], high[chosen]
        value = level / total_level * (high - low) + low
        flip = torch.rand(num, num_policies, dtype=torch.float64)
        value = torch.where(flip < negative[chosen], -value, value)
        applied = torch.rand(num, num_policies, dtype=torch.float64)
        return cls(chosen, applied < prob[chosen], value)


def rand_augment(
    images: torch.Tensor, params: RandAugmentParams, ops: Sequence[dict]
) -> torch.Tensor:
    """Apply each sample's ops, slot after slot, op by op on the samples
    that drew it (one batched call per op and slot)."""
    for slot in range(params.ops.shape[1]):
        for index, op in enumerate(ops):
            chosen = torch.nonzero(
                (params.ops[:, slot] == index) & params.applied[:, slot]
            )[:, 0]
            if len(chosen):
                dev = chosen.to(images.device)
                images[dev] = OP_FUNCTIONS[op['name']](
                    images[dev], params.magnitude[chosen, slot], op
                )
    return images


# -- random erasing ----------------------------------------------------------


@dataclass
class ErasingParams:
    """Per-sample draws of mmpretrain's ``RandomErasing``.

    Attributes:
        erased: (B,) bool, probability ``prob``.
        boxes: (B, 4) int64 ``top, left, height, width``: area fraction
            ~ U(min_area, max_area), log-uniform aspect (h / w) in
            ``aspect_range``, sides rounded and clipped to the image, top
            / left uniform in [0, H - h) (0 when h == H).
    """

    erased: torch.Tensor
    boxes: torch.Tensor

    @classmethod
    def draw(
        cls,
        num: int,
        height: int,
        width: int,
        prob: float,
        min_area_ratio: float,
        max_area_ratio: float,
        aspect_range: tuple[float, float],
    ) -> ErasingParams:
        erased = torch.rand(num, dtype=torch.float64) < prob
        log_aspect = _uniform(
            num, math.log(aspect_range[0]), math.log(aspect_range[1])
        )
        aspect = torch.exp(log_aspect)
        area = height * width * _uniform(num, min_area_ratio, max_area_ratio)
        h = torch.round(torch.sqrt(area * aspect)).clamp(max=height)
        w = torch.round(torch.sqrt(area / aspect)).clamp(max=width)
        top = torch.floor(torch.rand(num, dtype=torch.float64) * (height - h))
        left = torch.floor(torch.rand(num, dtype=torch.float64) * (width - w))
        return cls(erased, torch.stack([top, left, h, w], 1).long())


def random_erasing(
    images: torch.Tensor,
    params: ErasingParams,
    mean: torch.Tensor,
    std: torch.Tensor,
) -> torch.Tensor:
    """Fill each erased box with per-pixel noise ~ N(mean, std) per
    channel, truncated to integers and clipped to [0, 255] (mmpretrain's
    ``mode='rand'`` with ``fill_std``).

    Args:
        images: (B, 3, H, W) float32.
        mean, std: (3,) RGB.
    """
    chosen = torch.nonzero(params.erased)[:, 0]
    if not len(chosen):
        return images
    height, width = images.shape[2:]
    boxes = params.boxes[chosen].to(images.device)
    top, left, h, w = boxes[:, :, None, None, None].unbind(1)  # n,1,1,1
    ys = torch.arange(height, device=images.device)[None, None, :, None]
    xs = torch.arange(width, device=images.device)[None, None, None, :]
    inside = (ys >= top) & (ys < top + h) & (xs >= left) & (xs < left + w)
    dev = chosen.to(images.device)
    noise = torch.randn(
        len(chosen), 3, height, width, device=images.device
    ) * std.to(images)[None, :, None, None] + mean.to(images)[
        None, :, None, None
    ]
    noise = noise.trunc_().clamp_(0, 255)
    images[dev] = torch.where(inside, noise, images[dev])
    return images
