"""Data preprocessors: the step between the dataloader and the model, on
the model's device."""

from .gpu_decode_seg_data_preprocessor import (
    GPUDecodeSegDataPreProcessor,
    JpegDecodeError,
)

__all__ = ['GPUDecodeSegDataPreProcessor', 'JpegDecodeError']
