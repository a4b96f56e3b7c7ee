"""Collate a batch of JPEG samples into a few tensors, in the worker.

A DataLoader worker hands every tensor of a batch to the main process
through its own shared-memory segment: with ``pseudo_collate`` that is
four per sample (the JPEG bytes, ``caption_tokens``, ``prompt_tokens``,
``prompt_valid``), a thousand per batch of 256, and the main process
spends a fraction of a millisecond of CPU on each, at a GPU's thousands of
images per second more than a core. Packed here (the collate function
runs in the worker), a batch is five tensors whatever its size.

The packed batch (read by ``GPUDecodeSegDataPreProcessor``)::

    dict(
        inputs=dict(jpeg=(N,) uint8, the B JPEGs end to end,
                    offsets=(B + 1,) int64, JPEG i is jpeg[o[i]:o[i + 1]]),
        data_samples=[B SegDataSample] without the packed metainfo keys,
        packed_metainfo={key: (B, ...) tensor},
    )
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mmengine.registry import FUNCTIONS

from .transforms import TOKEN_KEYS


@FUNCTIONS.register_module()
def jpeg_batch_collate(
    data_batch: Sequence[dict], packed_keys: Sequence[str] = TOKEN_KEYS
) -> dict:
    """Pack the samples of ``PackJpegInputs`` (``inputs`` 1-D uint8).

    Args:
        data_batch: B samples ``dict(inputs=(N_i,) uint8,
            data_samples=SegDataSample)``.
        packed_keys: Metainfo tensors stacked into ``packed_metainfo``
            when every sample has one of the same shape (the caption and
            prompt tokens); other metainfo stays per sample.

    Returns:
        The packed batch (module docstring).
    """
    inputs = [sample['inputs'] for sample in data_batch]
    for i, data in enumerate(inputs):
        if not (isinstance(data, torch.Tensor) and data.dim() == 1):
            raise TypeError(
                f'jpeg_batch_collate: sample {i} has inputs of shape '
                f'{tuple(getattr(data, "shape", ()))}, not JPEG bytes (1-D); '
                'use it with PackJpegInputs'
            )
    sizes = torch.tensor([0] + [len(data) for data in inputs])
    samples = [sample['data_samples'] for sample in data_batch]
    packed = {}
    for key in packed_keys:
        values = [s.metainfo.get(key) for s in samples]
        if all(isinstance(v, torch.Tensor) for v in values) and (
            len({v.shape for v in values}) == 1
        ):
            packed[key] = torch.stack(values)
            for sample in samples:
                delattr(sample, key)
    return dict(
        inputs=dict(jpeg=torch.cat(inputs), offsets=sizes.cumsum(0)),
        data_samples=samples,
        packed_metainfo=packed,
    )
