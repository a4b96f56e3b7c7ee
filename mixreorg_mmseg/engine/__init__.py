"""Runtime pieces for MMEngine (registered in MMSeg's registries)."""

from .cpu_distributed import (
    DeviceAgnosticDDP,
    init_cpu_process_group,
    prepare_cpu_distributed,
)

__all__ = [
    'DeviceAgnosticDDP',
    'init_cpu_process_group',
    'prepare_cpu_distributed',
]
