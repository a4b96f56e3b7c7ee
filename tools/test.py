"""Evaluate a checkpoint on a config's test set with MMEngine's Runner.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out DIR]
        [--show] [--show-dir DIR] [--tta] [--non-strict]
        [--amp [--amp-dtype {bf16,fp16}]] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}]

The checkpoint must fit the model: missing, unexpected or reshaped keys
are refused (listed in short) unless ``--non-strict``; the training-only
keys of the MixReorg mixer are dropped with one log line.

Multi-GPU: ``bash tools/dist_test.sh CONFIG CHECKPOINT NUM_GPUS [args]``.
"""

import argparse
import sys

# the plugin first: it makes mmseg importable on mmcv-lite and installs the
# safe checkpoint I/O before the checkpoint is read
import mixreorg_mmseg  # noqa: F401
from mixreorg_mmseg.cli import (
    add_amp_args,
    add_common_args,
    add_non_strict_arg,
    build_runner,
    close_distributed,
    configure_amp_testing,
    exit_on_checkpoint_error,
    load_checkpoint_config,
    load_strictly,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a segmentor checkpoint'
    )
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out',
        help='folder to write the predicted label maps to (PNG, one per '
        'image), besides computing the metric',
    )
    parser.add_argument(
        '--show', action='store_true', help='show predictions in a window'
    )
    parser.add_argument(
        '--show-dir',
        help='folder to write images with the prediction drawn on them',
    )
    parser.add_argument(
        '--wait-time', type=float, default=2, help='seconds per --show image'
    )
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation '
        "(the config's tta_model and tta_pipeline)",
    )
    add_non_strict_arg(parser)
    add_amp_args(parser, 'testing')
    add_common_args(parser)
    return parser.parse_args(argv)


def enable_visualization(cfg, args) -> None:
    """Turn the visualization hook on for ``--show`` / ``--show-dir``."""
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        sys.exit(
            '--show/--show-dir need default_hooks.visualization '
            '(SegVisualizationHook) in the config'
        )
    hook['draw'] = True
    hook['interval'] = 1
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        cfg.visualizer['save_dir'] = args.show_dir


def main(argv=None):
    args = parse_args(argv)
    cfg = load_checkpoint_config(args)

    if args.show or args.show_dir:
        enable_visualization(cfg, args)
    if args.tta:
        for key in ('tta_model', 'tta_pipeline'):
            if key not in cfg:
                sys.exit(f'--tta needs `{key}` in the config')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    configure_amp_testing(cfg, args)
    if args.out is not None:
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True

    # after --tta: the hook matches the keys against the model that runs
    load_strictly(cfg, args.checkpoint, strict=not args.non_strict)
    with exit_on_checkpoint_error():
        runner = build_runner(cfg)
        runner.test()
    close_distributed()


if __name__ == '__main__':
    main()
