"""What the scripts under ``tools/`` share: arguments, config, Runner.

``tools/train.py`` and ``tools/test.py`` keep MMSeg's command-line
interface and let the Runner do the work; ``tools/demo.py`` and
``tools/visualize_groups.py`` read one image's zero-shot arguments. This
module is the package's top layer: it may import every other one
(``engine``, ``apis``...), and only the package's ``__init__`` imports it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import os.path as osp
import sys

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner, find_latest_checkpoint
from mmseg.registry import RUNNERS

from .apis.zero_shot import KEEP, init_zero_shot_model, parse_class_names
from .engine import prepare_cpu_distributed
from .utils.checkpoint_keys import CheckpointMismatchError
from .utils.safe_checkpoint import (
    UnreadableCheckpointError,
    UnsafeCheckpointError,
)

#: Errors about a checkpoint file that a tool reports in one line (they
#: name the file) instead of a traceback.
CHECKPOINT_ERRORS = (
    CheckpointMismatchError,
    UnreadableCheckpointError,
    UnsafeCheckpointError,
)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Arguments every tool takes: work dir, config overrides, launcher."""
    parser.add_argument(
        '--work-dir',
        help='where logs and checkpoints go (default: ./work_dirs/<config '
        'name>)',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys, e.g. train_dataloader.batch_size=8 '
        'model.backbone.depth=6 (lists as a=[1,2] or a=1,2)',
    )
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher (tools/dist_*.sh set pytorch)',
    )
    # torchrun sets LOCAL_RANK; older launchers pass --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


#: ``--amp-dtype`` choices -> torch dtype names
AMP_DTYPES = {'bf16': 'bfloat16', 'fp16': 'float16'}


def add_amp_args(parser: argparse.ArgumentParser, what: str) -> None:
    """``--amp`` and ``--amp-dtype`` (``what``: 'training' or 'testing')."""
    parser.add_argument(
        '--amp',
        action='store_true',
        help=f'mixed-precision {what}: bf16 autocast (no loss scaler) where '
        'the device supports bf16 (CPU, and GPUs from Ampere on), else fp16 '
        'with dynamic loss scaling',
    )
    parser.add_argument(
        '--amp-dtype',
        choices=sorted(AMP_DTYPES),
        default=None,
        help='the --amp precision instead of the automatic choice (fp16 '
        'needs a CUDA device)',
    )


def resolve_amp_dtype(requested: str | None) -> str:
    """The precision ``--amp`` runs in: ``'bf16'`` or ``'fp16'``.

    Without ``requested``: bf16 on a CUDA device that supports it and on
    CPU (torch autocasts to bf16 there), fp16 on an older GPU. Exits with a
    message for a choice the device cannot run.
    """
    cuda = torch.cuda.is_available()
    if requested is None:
        if cuda and not torch.cuda.is_bf16_supported():
            return 'fp16'
        return 'bf16'
    if requested == 'fp16' and not cuda:
        sys.exit(
            '--amp-dtype fp16 needs a CUDA device (its loss scaler runs '
            'on GPUs); none is available here: use bf16'
        )
    if requested == 'bf16' and cuda and not torch.cuda.is_bf16_supported():
        sys.exit(
            '--amp-dtype bf16: this CUDA device does not support bfloat16; '
            'use fp16'
        )
    return requested


def configure_amp_training(cfg: Config, args: argparse.Namespace) -> None:
    """Switch ``cfg.optim_wrapper`` to mixed precision for ``--amp``.

    bf16: ``Bf16OptimWrapper`` (autocast, no loss scaler); fp16:
    ``Fp16OptimWrapper`` (MMEngine's ``AmpOptimWrapper``, dynamic loss
    scaling unless the config sets ``loss_scale``). The wrapper's other
    settings (optimizer, clipping, accumulation) are kept.
    """
    if args.amp_dtype is not None and not args.amp:
        sys.exit('--amp-dtype needs --amp')
    if not args.amp:
        return
    dtype = resolve_amp_dtype(args.amp_dtype)
    wrapper = cfg.optim_wrapper
    wrapper.pop('dtype', None)
    if dtype == 'bf16':
        wrapper.pop('loss_scale', None)
        wrapper.type = 'Bf16OptimWrapper'
    else:
        wrapper.type = 'Fp16OptimWrapper'
        wrapper.setdefault('loss_scale', 'dynamic')


def configure_amp_testing(cfg: Config, args: argparse.Namespace) -> None:
    """Run ``cfg.test_cfg`` 's loop under autocast for ``--amp``
    (``AutocastTestLoop``)."""
    if args.amp_dtype is not None and not args.amp:
        sys.exit('--amp-dtype needs --amp')
    if not args.amp:
        return
    dtype = AMP_DTYPES[resolve_amp_dtype(args.amp_dtype)]
    loop = cfg.get('test_cfg') or {}
    if loop.get('type', 'TestLoop') not in ('TestLoop', 'AutocastTestLoop'):
        sys.exit(
            f'--amp replaces the TestLoop; this config runs {loop["type"]}'
        )
    loop = dict(loop, type='AutocastTestLoop', dtype=dtype)
    loop.pop('fp16', None)
    cfg.test_cfg = loop


def load_config(args: argparse.Namespace) -> Config:
    """Read ``args.config`` and apply the common arguments to it."""
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join(
            './work_dirs', osp.splitext(osp.basename(args.config))[0]
        )
    return cfg


def load_checkpoint_config(args: argparse.Namespace) -> Config:
    """:func:`load_config` for a tool that evaluates ``args.checkpoint``:
    exits naming the file when it is missing; never resumes."""
    if not osp.isfile(args.checkpoint):
        sys.exit(f'checkpoint not found: {args.checkpoint}')
    cfg = load_config(args)
    cfg.resume = False
    return cfg


def add_non_strict_arg(parser: argparse.ArgumentParser) -> None:
    """``--non-strict``: load a checkpoint whose keys do not match."""
    parser.add_argument(
        '--non-strict',
        action='store_true',
        help='load a checkpoint whose keys or shapes do not match the '
        'model: the matching weights are loaded, the others keep their '
        'random initialisation (a warning lists them). By default such a '
        'checkpoint is refused',
    )


def load_strictly(cfg: Config, checkpoint: str, strict: bool = True) -> None:
    """Make the Runner load ``checkpoint`` (``load_from``) after matching
    its keys with the model (:class:`~mixreorg_mmseg.engine.
    StrictLoadHook`); training-only keys are dropped with a log line."""
    cfg.load_from = checkpoint
    _add_strict_load_hook(cfg, checkpoint, strict, drop_training_only=True)


def resolve_resume(cfg: Config, requested: bool) -> None:
    """Point ``cfg.load_from`` at the checkpoint to resume, checked.

    With ``cfg.resume`` and no ``load_from``, the work dir's latest
    checkpoint (MMEngine's ``last_checkpoint`` file). When there is none:
    with ``--resume`` given (``requested``) the tool exits saying so;
    with ``resume = True`` from the config it logs a warning and trains
    from scratch. A checkpoint of another model is refused, naming the
    file and the config (:class:`~mixreorg_mmseg.engine.StrictLoadHook`,
    without dropping the mixer's keys: the optimizer state must fit).
    """
    if not cfg.get('resume'):
        return
    if cfg.get('load_from') is None:
        latest = find_latest_checkpoint(cfg.work_dir)
        if latest is None:
            where = (
                f'the work dir {cfg.work_dir} holds no checkpoint (no '
                'last_checkpoint file)'
            )
            if requested:
                sys.exit(
                    f'--resume: nothing to resume: {where}. Start without '
                    '--resume to train from scratch, or name the '
                    'checkpoint: --resume CKPT'
                )
            print_log(
                f'resume = True, but nothing to resume: {where}; training '
                'starts from scratch',
                logger='current',
                level=logging.WARNING,
            )
            cfg.resume = False
            return
        if not osp.isfile(latest):
            sys.exit(
                f'--resume: {cfg.work_dir}/last_checkpoint points at '
                f'{latest}, which does not exist'
            )
        cfg.load_from = latest
    _add_strict_load_hook(
        cfg, cfg.load_from, strict=True, drop_training_only=False
    )


def _add_strict_load_hook(
    cfg: Config, checkpoint: str, strict: bool, drop_training_only: bool
) -> None:
    hook = dict(
        type='StrictLoadHook',
        checkpoint=checkpoint,
        config=getattr(cfg, 'filename', None),
        strict=strict,
        drop_training_only=drop_training_only,
    )
    cfg.custom_hooks = [*cfg.get('custom_hooks', []), hook]


@contextlib.contextmanager
def exit_on_checkpoint_error():
    """Turn the errors of :data:`CHECKPOINT_ERRORS` into an exit with
    their one-line message (no traceback: the message names the file)."""
    try:
        yield
    except CHECKPOINT_ERRORS as error:
        sys.exit(f'{type(error).__name__}: {error}')


def build_runner(cfg: Config):
    """Build MMEngine's Runner (or the config's ``runner_type``)."""
    # multi-process on a machine without GPUs: gloo + CPU-capable DDP
    prepare_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def close_distributed() -> None:
    """End a multi-process run cleanly: wait for every rank, then destroy
    the process group, so its communication threads are joined before the
    interpreter exits (left to exit-time teardown, a gloo rank can abort
    with "terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def parse_bg_thresh(text: str) -> float | None:
    """``'none'`` -> None (no background class), ``'config'`` (``KEEP``)
    -> keep the config's, else a float."""
    if text in ('none', 'None'):
        return None
    if text == KEEP:
        return text
    return float(text)


def add_zero_shot_image_args(
    parser: argparse.ArgumentParser, default_out: str
) -> None:
    """Arguments of the one-image zero-shot tools (demo, groups)."""
    parser.add_argument('image', help='image file')
    parser.add_argument('config', help='config with a ZeroShotGroupHead')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--classes',
        required=True,
        help='comma-separated class names, e.g. "cat,dog,grass"',
    )
    parser.add_argument(
        '--out', default=default_out, help=f'output PNG ({default_out})'
    )
    parser.add_argument(
        '--device',
        default=None,
        help='cpu, cuda:0... (default: cuda:0 when available, else cpu)',
    )
    parser.add_argument(
        '--bg-thresh',
        type=parse_bg_thresh,
        default=KEEP,
        help="background threshold, or 'none' for no background class "
        "(default: the config's)",
    )
    parser.add_argument(
        '--opacity', type=float, default=0.5, help='mask opacity (0, 1]'
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys (as tools/test.py)',
    )
    add_non_strict_arg(parser)


def zero_shot_model_from_args(args: argparse.Namespace):
    """The model of :func:`add_zero_shot_image_args` 's arguments, its
    classes set (exits with a message on a missing file, a bad class list
    or a checkpoint that does not fit the model)."""
    for path, what in ((args.image, 'image'), (args.checkpoint, 'checkpoint')):
        if not osp.isfile(path):
            sys.exit(f'{what} not found: {path}')
    try:
        names = parse_class_names(args.classes)
    except ValueError as error:
        sys.exit(f'--classes: {error}')
    device = args.device or ('cuda:0' if torch.cuda.is_available() else 'cpu')
    with exit_on_checkpoint_error():
        return init_zero_shot_model(
            args.config,
            args.checkpoint,
            names,
            device=device,
            bg_thresh=args.bg_thresh,
            cfg_options=args.cfg_options,
            strict=not args.non_strict,
        )
