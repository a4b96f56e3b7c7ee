"""High-level calls for a single image, as ``mmseg.apis`` offers them."""

from .segment_diagnostics import folder_split, segment_diagnostics
from .zero_shot import (
    init_zero_shot_model,
    parse_class_names,
    prepare_image,
    set_zero_shot_query,
    zero_shot_groups,
    zero_shot_predict,
)

__all__ = [
    'folder_split',
    'init_zero_shot_model',
    'parse_class_names',
    'prepare_image',
    'segment_diagnostics',
    'set_zero_shot_query',
    'zero_shot_groups',
    'zero_shot_predict',
]
