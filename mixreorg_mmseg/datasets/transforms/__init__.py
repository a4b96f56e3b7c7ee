"""Data transforms (registered in ``mmseg.registry.TRANSFORMS``)."""

from .drop_caption_words import COLOUR_WORDS, DropCaptionWords
from .jpeg_bytes import LoadJpegBytes, PackJpegInputs
from .load_image_or_skip import LoadImageOrSkip
from .rotate90 import Rotate90
from .tokenize_caption import TOKEN_KEYS, TokenizeCaption

__all__ = [
    'COLOUR_WORDS',
    'DropCaptionWords',
    'LoadImageOrSkip',
    'LoadJpegBytes',
    'PackJpegInputs',
    'Rotate90',
    'TOKEN_KEYS',
    'TokenizeCaption',
]
