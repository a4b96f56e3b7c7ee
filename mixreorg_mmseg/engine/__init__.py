"""Runtime pieces for MMEngine (registered in MMSeg's registries)."""

from .cpu_distributed import (
    DeviceAgnosticDDP,
    init_cpu_process_group,
    prepare_cpu_distributed,
)
from .iteration_seed_hook import IterationSeedHook
from .mixed_precision import (
    AutocastTestLoop,
    Bf16OptimWrapper,
    Fp16OptimWrapper,
)
from .resumable_epoch_loop import ResumableEpochBasedTrainLoop
from .sharded_data_hook import ShardedDataHook
from .strict_checkpoint_loading import StrictLoadHook, load_model_checkpoint
from .zero_shot_classes_hook import ZeroShotClassesHook

__all__ = [
    'AutocastTestLoop',
    'Bf16OptimWrapper',
    'Fp16OptimWrapper',
    'DeviceAgnosticDDP',
    'IterationSeedHook',
    'ResumableEpochBasedTrainLoop',
    'ShardedDataHook',
    'StrictLoadHook',
    'ZeroShotClassesHook',
    'init_cpu_process_group',
    'load_model_checkpoint',
    'prepare_cpu_distributed',
]
