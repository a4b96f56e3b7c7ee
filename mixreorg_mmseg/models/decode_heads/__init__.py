"""Decode heads: the zero-shot head of text-supervised segmentors."""

from .zero_shot_group_head import (
    ZeroShotGroupHead,
    input_size,
    set_zero_shot_classes,
)

__all__ = ['ZeroShotGroupHead', 'input_size', 'set_zero_shot_classes']
