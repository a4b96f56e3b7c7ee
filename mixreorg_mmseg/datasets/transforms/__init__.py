"""Data transforms (registered in ``mmseg.registry.TRANSFORMS``)."""

from .load_image_or_skip import LoadImageOrSkip
from .tokenize_caption import TOKEN_KEYS, TokenizeCaption

__all__ = ['LoadImageOrSkip', 'TOKEN_KEYS', 'TokenizeCaption']
