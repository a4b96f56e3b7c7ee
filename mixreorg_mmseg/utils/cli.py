"""What ``tools/train.py`` and ``tools/test.py`` share: arguments and config.

The tools keep MMSeg's command-line interface; the Runner does the work.
"""

from __future__ import annotations

import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction


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


def build_runner(cfg: Config):
    """Build MMEngine's Runner (or the config's ``runner_type``)."""
    from mmengine.runner import Runner
    from mmseg.registry import RUNNERS

    from mixreorg_mmseg.engine import prepare_cpu_distributed

    # multi-process on a machine without GPUs: gloo + CPU-capable DDP
    prepare_cpu_distributed(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
