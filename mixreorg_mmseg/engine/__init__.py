"""Runtime pieces for MMEngine (registered in MMSeg's registries)."""

from .cpu_distributed import (
    DeviceAgnosticDDP,
    init_cpu_process_group,
    prepare_cpu_distributed,
)
from .mixed_precision import (
    AutocastTestLoop,
    Bf16OptimWrapper,
    Fp16OptimWrapper,
)
from .sharded_data_hook import ShardedDataHook
from .zero_shot_classes_hook import ZeroShotClassesHook

__all__ = [
    'AutocastTestLoop',
    'Bf16OptimWrapper',
    'Fp16OptimWrapper',
    'DeviceAgnosticDDP',
    'ShardedDataHook',
    'ZeroShotClassesHook',
    'init_cpu_process_group',
    'prepare_cpu_distributed',
]
