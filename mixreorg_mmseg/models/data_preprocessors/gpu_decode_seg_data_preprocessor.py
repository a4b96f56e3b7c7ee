"""Decode and augment a training batch on the model's device.

The CPU pipeline of the CC12M configs decodes every JPEG and runs the
DeiT-style augmentation in the dataloader workers: at a GPU's 2,200+
images/s that takes many CPU cores per GPU (docs/benchmarks.md, "Data
loading"). This data preprocessor takes the JPEG bytes instead (the
workers only read the shards and tokenize: ``LoadJpegBytes``,
``PackJpegInputs``), decodes the batch with torchvision's ``decode_jpeg``
on the model's device (nvJPEG on CUDA; libjpeg on CPU, where the tests
run it), and augments it there with the CPU pipeline's rules
(:mod:`.batch_augment`), then normalises as ``SegDataPreProcessor``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from numbers import Number

import torch
from mmengine.logging import print_log
from mmseg.models.data_preprocessor import SegDataPreProcessor
from mmseg.registry import MODELS
from mmseg.utils import stack_batch
from torchvision.io import ImageReadMode, decode_jpeg

from .batch_augment import (
    ColorJitterParams,
    ErasingParams,
    RandAugmentParams,
    color_jitter,
    crop_and_resize,
    draw_crop_boxes,
    flip,
    parse_rand_augment_policies,
    rand_augment,
    random_erasing,
)


class JpegDecodeError(RuntimeError):
    """No image of a batch could be decoded; the message names them."""


@MODELS.register_module()
class GPUDecodeSegDataPreProcessor(SegDataPreProcessor):
    """``SegDataPreProcessor`` that decodes and augments JPEG bytes.

    Call flow of a training batch whose ``inputs`` are JPEG bytes (a list
    of B 1-D uint8 tensors, from ``PackJpegInputs`` and
    ``pseudo_collate``; or packed by ``jpeg_batch_collate``:
    ``dict(jpeg=(N,) uint8, offsets=(B + 1,) int64)``, with the stacked
    token tensors in ``data['packed_metainfo']``, put back into each data
    sample's metainfo here)::

        decode (B images, 3 x H_i x W_i RGB, on the device)
          -> random resized crop to ``size`` (per image, bilinear)
          -> flip -> colour jitter -> RandAugment -> random erasing
          -> normalise with ``mean`` / ``std``
          -> inputs (B', 3, size[0], size[1]) float32

    B' is B less the images that cannot be decoded: each is logged with
    its ``img_path`` (shard and key) and counted in
    :attr:`skipped_files`; a batch with none left raises
    :class:`JpegDecodeError`. Any other input (decoded (3, H, W) images:
    validation and test pipelines) goes through ``SegDataPreProcessor``
    unchanged, ``bgr_to_rgb`` included. JPEG bytes outside training are
    decoded, resized to ``size`` and normalised, not augmented.

    The random parameters are drawn on the CPU from torch's generator,
    which ``IterationSeedHook`` seeds before every step: a resumed run
    draws what the uninterrupted one drew. The erasing noise comes from
    the device's generator.

    Args:
        mean, std, size, pad_val, seg_pad_val, bgr_to_rgb, rgb_to_bgr,
            test_cfg: As ``SegDataPreProcessor`` (``mean`` / ``std`` in
            RGB order, as the decoded JPEGs are RGB).
        crop_scale: Area fraction range of the random resized crop.
        crop_ratio: Aspect ratio (w / h) range of the crop.
        flip_prob: Probability of a left-right flip.
        color_jitter: ``dict(brightness, contrast, saturation)``, each
            factor ~ U(max(0, 1 - v), 1 + v), applied in random order;
            None: off.
        rand_augment: ``dict(policies, num_policies, magnitude_level,
            magnitude_std, total_level, fill)``: ``policies`` as
            mmpretrain's ``RandAugment`` takes them (the ``mmpretrain.``
            scope may stay), ``fill`` the RGB value of uncovered pixels of
            the geometric ops; None: off.
        random_erasing: ``dict(prob, min_area_ratio, max_area_ratio,
            aspect_range, fill_mean, fill_std)`` (RGB fill statistics, as
            mmpretrain's ``RandomErasing(mode='rand')``); None: off.
    """

    def __init__(
        self,
        mean: Sequence[Number] | None = None,
        std: Sequence[Number] | None = None,
        size: tuple[int, int] = (224, 224),
        size_divisor: int | None = None,
        pad_val: Number = 0,
        seg_pad_val: Number = 255,
        bgr_to_rgb: bool = False,
        rgb_to_bgr: bool = False,
        batch_augments: list[dict] | None = None,
        test_cfg: dict | None = None,
        crop_scale: tuple[float, float] = (0.08, 1.0),
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_prob: float = 0.5,
        color_jitter: dict | None = None,
        rand_augment: dict | None = None,
        random_erasing: dict | None = None,
    ) -> None:
        super().__init__(
            mean=mean,
            std=std,
            size=size,
            size_divisor=size_divisor,
            pad_val=pad_val,
            seg_pad_val=seg_pad_val,
            bgr_to_rgb=bgr_to_rgb,
            rgb_to_bgr=rgb_to_bgr,
            batch_augments=batch_augments,
            test_cfg=test_cfg,
        )
        if size is None or len(size) != 2:
            raise ValueError(
                f'GPUDecodeSegDataPreProcessor needs size=(H, W) (the crop '
                f'size), got size={size!r}'
            )
        self.size = tuple(int(s) for s in size)
        self.crop_scale = tuple(crop_scale)
        self.crop_ratio = tuple(crop_ratio)
        self.flip_prob = float(flip_prob)
        self.color_jitter = self._options(
            'color_jitter',
            color_jitter,
            dict(brightness=0.0, contrast=0.0, saturation=0.0),
        )
        self.rand_augment = self._options(
            'rand_augment',
            rand_augment,
            dict(
                policies=(),
                num_policies=2,
                magnitude_level=9,
                magnitude_std=0.0,
                total_level=10,
                fill=(128, 128, 128),
            ),
        )
        self.rand_augment_ops = []
        if self.rand_augment is not None:
            self.rand_augment_ops = parse_rand_augment_policies(
                self.rand_augment['policies'], self.rand_augment['fill']
            )
        self.random_erasing = self._options(
            'random_erasing',
            random_erasing,
            dict(
                prob=0.5,
                min_area_ratio=0.02,
                max_area_ratio=0.4,
                aspect_range=(3 / 10, 10 / 3),
                fill_mean=(128.0, 128.0, 128.0),
                fill_std=(1.0, 1.0, 1.0),
            ),
        )
        #: ``img_path`` of every image that could not be decoded, in order
        self.skipped_files: list[str] = []

    @staticmethod
    def _options(name: str, given: dict | None, defaults: dict):
        if given is None:
            return None
        unknown = set(given) - set(defaults)
        if unknown:
            raise ValueError(
                f'data_preprocessor.{name}: unknown keys {sorted(unknown)}; '
                f'known: {sorted(defaults)}'
            )
        return {**defaults, **given}

    @staticmethod
    def is_jpeg_batch(inputs) -> bool:
        """Whether ``inputs`` are encoded images: 1-D uint8 tensors, or
        packed by ``jpeg_batch_collate``."""
        if isinstance(inputs, dict):
            return set(inputs) == {'jpeg', 'offsets'}
        return (
            isinstance(inputs, list | tuple)
            and len(inputs) > 0
            and all(
                isinstance(x, torch.Tensor)
                and x.dim() == 1
                and x.dtype == torch.uint8
                for x in inputs
            )
        )

    # -- decoding ---------------------------------------------------------

    def decode(
        self, encoded: Sequence[torch.Tensor], data_samples: list | None
    ) -> tuple[list[torch.Tensor], list[int]]:
        """Decode the JPEGs on this module's device.

        Returns:
            The decoded (3, H_i, W_i) uint8 RGB images and the indices of
            their samples; a JPEG the device's decoder rejects is retried
            on the CPU, then logged and left out.
        """
        device = self.device
        encoded = [x.cpu() for x in encoded]  # decode_jpeg reads host bytes
        try:
            return (
                decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device),
                list(range(len(encoded))),
            )
        except RuntimeError:
            pass  # one bad image fails the batched call: find it
        images, kept = [], []
        for i, data in enumerate(encoded):
            try:
                image = decode_jpeg(
                    data, mode=ImageReadMode.RGB, device=device
                )
            except RuntimeError:
                try:
                    image = decode_jpeg(data, mode=ImageReadMode.RGB).to(
                        device
                    )
                except RuntimeError as error:
                    self._skip(i, data_samples, error)
                    continue
            images.append(image)
            kept.append(i)
        if not images:
            raise JpegDecodeError(
                f'none of the {len(encoded)} JPEGs of the batch can be '
                f'decoded, e.g. {self.skipped_files[-1]}'
            )
        return images, kept

    def _skip(self, index: int, data_samples, error: Exception) -> None:
        path = f'batch sample {index}'
        if data_samples is not None:
            path = data_samples[index].metainfo.get('img_path', path)
        self.skipped_files.append(path)
        reason = ' '.join(str(error).split())
        print_log(
            f'skipping undecodable JPEG {path} ({type(error).__name__}: '
            f'{reason}); {len(self.skipped_files)} skipped so far by the '
            'data preprocessor',
            logger='current',
            level=logging.WARNING,
        )

    # -- augmentation -----------------------------------------------------

    def augment(self, images: Sequence[torch.Tensor]) -> torch.Tensor:
        """The training augmentation of the decoded (3, H_i, W_i) uint8
        RGB images; returns (B, 3, size[0], size[1]) float32 in [0, 255]
        (integer values)."""
        num = len(images)
        heights = torch.tensor([img.shape[-2] for img in images])
        widths = torch.tensor([img.shape[-1] for img in images])
        boxes = draw_crop_boxes(
            heights, widths, self.crop_scale, self.crop_ratio
        )
        batch = crop_and_resize(images, boxes, self.size)
        batch = flip(batch, torch.rand(num) < self.flip_prob)
        if self.color_jitter is not None:
            params = ColorJitterParams.draw(num, **self.color_jitter)
            batch = color_jitter(batch, params)
        if self.rand_augment is not None and self.rand_augment_ops:
            options = {
                k: v
                for k, v in self.rand_augment.items()
                if k not in ('policies', 'fill')
            }
            params = RandAugmentParams.draw(
                num, self.rand_augment_ops, **options
            )
            batch = rand_augment(batch, params, self.rand_augment_ops)
        if self.random_erasing is not None:
            options = dict(self.random_erasing)
            mean = torch.tensor(options.pop('fill_mean'))
            std = torch.tensor(options.pop('fill_std'))
            params = ErasingParams.draw(num, *self.size, **options)
            batch = random_erasing(batch, params, mean, std)
        return batch

    def _to_batch(self, images, training: bool) -> torch.Tensor:
        """(B, 3, H, W) float32 in [0, 255]: augmented when training,
        else only resized to ``size``."""
        if training:
            return self.augment(images)
        return torch.cat(
            [
                torch.nn.functional.interpolate(
                    img[None].float(),
                    size=self.size,
                    mode='bilinear',
                    align_corners=False,
                    antialias=True,
                )
                for img in images
            ]
        ).round_()

    def forward(self, data: dict, training: bool = False) -> dict:
        """Decode, augment (training only) and normalise a batch of JPEG
        bytes; any other batch as ``SegDataPreProcessor`` does.

        Returns:
            ``dict(inputs=(B', 3, H, W) float32, data_samples=[B'])``.
        """
        encoded = data.get('inputs')
        if not self.is_jpeg_batch(encoded):
            return super().forward(data, training)
        data_samples = data.get('data_samples')
        if isinstance(encoded, dict):  # jpeg_batch_collate's packing
            bounds = encoded['offsets'].tolist()
            encoded = [
                encoded['jpeg'][start:end]
                for start, end in zip(bounds[:-1], bounds[1:], strict=True)
            ]
        for key, values in data.get('packed_metainfo', {}).items():
            values = values.to(self.device)  # one copy, then views
            for sample, value in zip(data_samples, values, strict=True):
                sample.set_metainfo({key: value})
        images, kept = self.decode(encoded, data_samples)
        if data_samples is not None and len(kept) < len(data_samples):
            data_samples = [data_samples[i] for i in kept]
        if data_samples is not None:
            data_samples = self.cast_data(data_samples)
        # MMEngine runs the data preprocessor inside the optimizer
        # wrapper's autocast: the pixel arithmetic stays in float32
        with torch.autocast(self.device.type, enabled=False):
            batch = self._to_batch(images, training)
        if self._enable_normalize:
            batch = (batch - self.mean) / self.std
        if data_samples is not None:
            batch, data_samples = stack_batch(
                list(batch),
                data_samples,
                size=self.size,
                pad_val=self.pad_val,
                seg_pad_val=self.seg_pad_val,
            )
        return dict(inputs=batch, data_samples=data_samples)
