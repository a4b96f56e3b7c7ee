"""Distributed data parallel on machines without GPUs (gloo).

MMEngine 0.10's ``pytorch`` launcher always calls ``torch.cuda.set_device``
and its Runner wraps the model in DDP with ``device_ids=[LOCAL_RANK]``; both
fail on a CPU-only machine. Multi-process training on CPU is how this
project's tests exercise the distributed code paths (the all-gather of the
contrastive losses, sharded data loading), and some users have no GPU, so:

* :func:`init_cpu_process_group` starts the gloo process group from the
  ``torchrun`` environment before the Runner is built (the Runner then skips
  its own, CUDA-only, initialisation);
* :class:`DeviceAgnosticDDP` is MMEngine's ``MMDistributedDataParallel``
  that passes ``device_ids`` only when the module lives on a GPU.

:func:`prepare_cpu_distributed` does both for a config. On GPU machines
none of this is used: the config's NCCL setting and MMEngine's own wrapper
apply unchanged.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel
from mmseg.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class DeviceAgnosticDDP(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that also wraps CPU modules.

    Args:
        module: The model.
        device_ids: Ignored (set to ``None``) when the model's parameters are
            on the CPU, as torch's DDP requires for CPU modules.
        **kwargs: As for ``MMDistributedDataParallel``.
    """

    def __init__(self, module: torch.nn.Module, device_ids=None, **kwargs):
        first = next(module.parameters(), None)
        if first is None or first.device.type == 'cpu':
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)


def init_cpu_process_group(backend: str = 'gloo') -> bool:
    """Start the process group from ``torchrun``'s environment variables.

    Returns ``True`` if this call started it.

    Raises:
        RuntimeError: if the ``torchrun`` variables are missing (the tool was
            started with ``--launcher pytorch`` but not through torchrun).
    """
    if dist.is_initialized():
        return False
    missing = [
        k
        for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
        if k not in os.environ
    ]
    if missing:
        raise RuntimeError(
            f'--launcher pytorch needs the torchrun environment; missing '
            f'{", ".join(missing)}. Start with tools/dist_train.sh or '
            'torchrun.'
        )
    dist.init_process_group(backend=backend)
    return True


def prepare_cpu_distributed(cfg: Config) -> bool:
    """Make a ``launcher='pytorch'`` config run on a CPU-only machine.

    Does nothing (returns ``False``) when CUDA is available or the launcher
    is not ``pytorch``.
    """
    if cfg.get('launcher', 'none') != 'pytorch' or torch.cuda.is_available():
        return False
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    cfg.env_cfg.dist_cfg['backend'] = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        # scoped name: Runner.wrap_model looks it up in MMEngine's root
        # registry, which does not search MMSeg's child registry by itself
        cfg.model_wrapper_cfg = dict(type='mmseg.DeviceAgnosticDDP')
    init_cpu_process_group('gloo')
    return True
