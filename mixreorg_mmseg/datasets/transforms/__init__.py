"""Data transforms (registered in ``mmseg.registry.TRANSFORMS``)."""

from .load_image_or_skip import LoadImageOrSkip

__all__ = ['LoadImageOrSkip']
