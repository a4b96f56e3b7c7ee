"""High-level calls for a single image, as ``mmseg.apis`` offers them."""

from .segment_diagnostics import folder_split, segment_diagnostics
from .zero_shot import (
    init_zero_shot_model,
    prepare_image,
    zero_shot_groups,
    zero_shot_predict,
)

__all__ = [
    'folder_split',
    'init_zero_shot_model',
    'prepare_image',
    'segment_diagnostics',
    'zero_shot_groups',
    'zero_shot_predict',
]
