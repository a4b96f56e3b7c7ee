"""Decode heads: the zero-shot head of text-supervised segmentors."""

from .pixel_adaptive_refinement import PixelAdaptiveRefinement
from .zero_shot_group_head import (
    ZeroShotGroupHead,
    input_size,
    set_zero_shot_classes,
    zero_shot_head,
)

__all__ = [
    'PixelAdaptiveRefinement',
    'ZeroShotGroupHead',
    'input_size',
    'set_zero_shot_classes',
    'zero_shot_head',
]
