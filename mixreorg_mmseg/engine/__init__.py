"""Runtime pieces for MMEngine (registered in MMSeg's registries)."""

from .cpu_distributed import (
    DeviceAgnosticDDP,
    init_cpu_process_group,
    prepare_cpu_distributed,
)
from .parameter_count_hook import (
    ParameterCountHook,
    count_parameters,
    format_parameter_counts,
)

__all__ = [
    'DeviceAgnosticDDP',
    'init_cpu_process_group',
    'prepare_cpu_distributed',
    'ParameterCountHook',
    'count_parameters',
    'format_parameter_counts',
]
