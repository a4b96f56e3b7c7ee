"""Mixed precision for MMEngine's Runner: bf16 without a loss scaler.

bfloat16 keeps float32's exponent range, so gradients do not underflow and
training needs no loss scaling; float16 does (MMEngine's
``AmpOptimWrapper``, whose ``GradScaler`` skips the steps where a gradient
overflows: the ``grad_norm: inf`` of an fp16 log). MMEngine 0.10's
``AmpOptimWrapper`` always scales and only runs on GPUs; the wrapper here
autocasts to bf16 on whatever device the model is on (CUDA, or CPU, where
torch's autocast supports bf16) and steps as ``OptimWrapper`` does.
``tools/train.py --amp`` picks one of the two and ``tools/test.py --amp``
the test loop below; each says in the log which precision runs.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.runner import TestLoop
from mmseg.registry import LOOPS, OPTIM_WRAPPERS


def model_device_type(model: torch.nn.Module) -> str:
    """``'cuda'``, ``'cpu'``...: where the model's first parameter is."""
    for parameter in model.parameters():
        return parameter.device.type
    return 'cpu'


@OPTIM_WRAPPERS.register_module()
class Bf16OptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward runs under bf16 autocast.

    The backward pass and the step are ``OptimWrapper``'s (no loss
    scaler); parameters, gradients and optimizer state stay float32.

    Args:
        **kwargs: As for ``OptimWrapper`` (``optimizer``, ``clip_grad``,
            ``accumulative_counts``).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.device_type = None

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        device_type = model_device_type(model)
        if device_type != self.device_type:
            self.device_type = device_type
            print_log(
                f'mixed precision: bf16 autocast on {device_type}, no loss '
                'scaler',
                logger='current',
            )
        with (
            super().optim_context(model),
            torch.autocast(device_type, dtype=torch.bfloat16),
        ):
            yield


@OPTIM_WRAPPERS.register_module()
class Fp16OptimWrapper(AmpOptimWrapper):
    """MMEngine's ``AmpOptimWrapper`` in float16 with dynamic loss scaling
    (a GPU only), saying so in the log."""

    def __init__(self, loss_scale='dynamic', **kwargs):
        kwargs.pop('dtype', None)
        super().__init__(loss_scale=loss_scale, dtype='float16', **kwargs)
        print_log(
            'mixed precision: fp16 autocast with '
            f'{"dynamic" if loss_scale == "dynamic" else "static"} loss '
            'scaling',
            logger='current',
        )


@LOOPS.register_module()
class AutocastTestLoop(TestLoop):
    """MMEngine's ``TestLoop`` with the model's forward under autocast to
    ``dtype`` on the model's device (MMEngine's own ``fp16=True`` picks
    float16 on GPUs, with no bf16 choice).

    Args:
        runner, dataloader, evaluator: As for ``TestLoop``.
        dtype: ``'bfloat16'`` or ``'float16'``.
    """

    def __init__(self, runner, dataloader, evaluator, dtype='bfloat16'):
        if dtype not in ('bfloat16', 'float16'):
            raise ValueError(
                f"test_cfg.dtype must be 'bfloat16' or 'float16', got "
                f'{dtype!r}'
            )
        super().__init__(runner, dataloader, evaluator, fp16=False)
        self.dtype = getattr(torch, dtype)
        print_log(
            f'mixed precision: {dtype} autocast for testing', logger='current'
        )

    @torch.no_grad()
    def run_iter(self, idx, data_batch) -> None:
        """One batch: ``TestLoop.run_iter`` with the forward autocast (the
        models this package runs return predictions, no test losses)."""
        self.runner.call_hook(
            'before_test_iter', batch_idx=idx, data_batch=data_batch
        )
        device_type = model_device_type(self.runner.model)
        with torch.autocast(device_type, dtype=self.dtype):
            outputs = self.runner.model.test_step(data_batch)
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook(
            'after_test_iter',
            batch_idx=idx,
            data_batch=data_batch,
            outputs=outputs,
        )
