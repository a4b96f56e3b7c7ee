"""Keep a sample's JPEG undecoded, for a data preprocessor that decodes
the batch on the accelerator (``GPUDecodeSegDataPreProcessor``).

Decoding and augmenting on the CPU costs several milliseconds of a core
per image; reading the bytes and the JPEG header costs microseconds. With
these two steps the dataloader workers only read, check the header and
tokenize the caption (``TokenizeCaption`` between them).
"""

from __future__ import annotations

import io
import logging

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmengine.fileio import get
from mmengine.logging import print_log
from mmseg.datasets.transforms import PackSegInputs
from mmseg.registry import TRANSFORMS
from PIL import Image


@TRANSFORMS.register_module()
class LoadJpegBytes(BaseTransform):
    """The sample's JPEG bytes, checked but not decoded.

    Takes ``img_bytes`` (bytes) when the dataset holds them
    (``WebDatasetImageText(decode_images=False)``), else reads the file at
    ``img_path`` (map-style datasets). The header is read (PIL, no pixel
    data): a file that is not a JPEG or whose header is unreadable is
    skipped like ``LoadImageOrSkip`` skips an undecodable image: a warning
    naming it, ``None`` returned (``WebDatasetImageText`` counts it under
    ``pipeline``; MMEngine's map-style datasets draw another index). A
    JPEG whose header is fine but whose data is corrupt is found when the
    data preprocessor decodes it (logged there with its ``img_path``).

    Added keys: ``img_bytes`` (N,) uint8 array; ``img_shape`` and
    ``ori_shape`` (H, W) from the header.

    Attributes:
        skipped_files (list[str]): Paths skipped so far (per process).
    """

    def __init__(self) -> None:
        self.skipped_files: list[str] = []

    def transform(self, results: dict) -> dict | None:
        path = results.get('img_path', '<no img_path>')
        try:
            data = results.pop('img_bytes', None)
            if data is None:
                data = get(results['img_path'])
            with Image.open(io.BytesIO(data)) as image:
                if image.format != 'JPEG':
                    raise ValueError(f'a {image.format} image, not a JPEG')
                width, height = image.size
        except Exception as error:  # any reader's error: the file is bad
            self.skipped_files.append(path)
            reason = ' '.join(str(error).split())
            print_log(
                f'skipping unreadable JPEG {path} ({type(error).__name__}: '
                f'{reason}); {len(self.skipped_files)} skipped so far',
                logger='current',
                level=logging.WARNING,
            )
            return None
        results['img_bytes'] = np.frombuffer(data, dtype=np.uint8)
        results['img_shape'] = results['ori_shape'] = (height, width)
        return results


@TRANSFORMS.register_module()
class PackJpegInputs(PackSegInputs):
    """``PackSegInputs`` whose ``inputs`` are the JPEG bytes.

    Required keys: ``img_bytes`` (from :class:`LoadJpegBytes`).

    Returns:
        ``dict(inputs=(N,) uint8 tensor, data_samples=SegDataSample)``,
        the sample's ``meta_keys`` in the data sample's metainfo.
    """

    def transform(self, results: dict) -> dict:
        if 'img_bytes' not in results:
            raise KeyError(
                'PackJpegInputs needs "img_bytes" (LoadJpegBytes before it); '
                f'got keys {sorted(results)}'
            )
        data = results.pop('img_bytes')
        packed = super().transform(results)
        # a copy: the bytes of a numpy view over Python bytes are read-only
        packed['inputs'] = torch.from_numpy(np.array(data, copy=True))
        return packed
