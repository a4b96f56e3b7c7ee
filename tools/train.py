"""Train a segmentor from a config with MMEngine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]]
        [--amp [--amp-dtype {bf16,fp16}]]
        [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]

Multi-GPU: ``bash tools/dist_train.sh CONFIG NUM_GPUS [args]``.
"""

import argparse
import os.path as osp
import sys

# the plugin first: it makes mmseg importable on mmcv-lite and installs the
# safe checkpoint I/O before anything loads a checkpoint
import mixreorg_mmseg  # noqa: F401
from mixreorg_mmseg.cli import (
    add_amp_args,
    add_common_args,
    build_runner,
    close_distributed,
    configure_amp_training,
    exit_on_checkpoint_error,
    load_config,
    resolve_resume,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a segmentor (MixReorg, GroupViT or any MMSeg model)'
    )
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        default=None,
        metavar='CKPT',
        help='resume training: without a value from the latest checkpoint '
        'in the work dir (an error if there is none), or from the '
        'checkpoint given; a checkpoint of another model is refused',
    )
    add_amp_args(parser, 'training')
    add_common_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args)

    configure_amp_training(cfg, args)

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            sys.exit(f'--resume: checkpoint not found: {args.resume}')
        cfg.resume = True
        cfg.load_from = args.resume

    resolve_resume(cfg, requested=args.resume is not None)
    with exit_on_checkpoint_error():
        runner = build_runner(cfg)
        runner.train()
    close_distributed()


if __name__ == '__main__':
    main()
