"""High-level calls, as ``mmseg.apis`` offers them: zero-shot inference of
one image, segment diagnostics, the background threshold chosen on
validation data."""

from .background_calibration import (
    DEFAULT_THRESHOLDS,
    choose_background_threshold,
    sweep_background_threshold,
    validation_as_test,
    write_threshold_config,
)
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
    'DEFAULT_THRESHOLDS',
    'choose_background_threshold',
    'folder_split',
    'init_zero_shot_model',
    'parse_class_names',
    'prepare_image',
    'segment_diagnostics',
    'set_zero_shot_query',
    'sweep_background_threshold',
    'validation_as_test',
    'write_threshold_config',
    'zero_shot_groups',
    'zero_shot_predict',
]
