"""High-level calls for a single image, as ``mmseg.apis`` offers them."""

from .zero_shot import (
    init_zero_shot_model,
    zero_shot_groups,
    zero_shot_predict,
)

__all__ = ['init_zero_shot_model', 'zero_shot_groups', 'zero_shot_predict']
