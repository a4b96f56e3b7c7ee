"""Choose a checkpoint's background threshold on the validation split.

    python tools/analysis_tools/calibrate_background.py CONFIG CHECKPOINT \
        [--thresholds 0.2 0.25 ... 0.95] [--out-config FILE] \
        [--out-json FILE] [--work-dir DIR] [--cfg-options ...]

Evaluates CHECKPOINT with the config's ``val_dataloader`` and
``val_evaluator`` once per value of ``model.decode_head.bg_thresh`` (MMEngine's
test loop each time), prints the mIoU of each, and picks the best (ties:
the value nearest the config's). ``--out-config`` writes a config that
inherits CONFIG with that threshold, for ``tools/test.py``:

    python tools/test.py FILE CHECKPOINT [--tta]

The test data take no part in the choice. Any metric of the evaluator
can be the criterion (``--metric``, default ``mIoU``).
"""

import argparse
import json
import sys

# the plugin first: it makes mmseg importable on mmcv-lite
import mixreorg_mmseg  # noqa: F401
from mixreorg_mmseg.apis.background_calibration import (
    DEFAULT_THRESHOLDS,
    choose_background_threshold,
    sweep_background_threshold,
    validation_as_test,
    write_threshold_config,
)
from mixreorg_mmseg.cli import (
    add_common_args,
    add_non_strict_arg,
    build_runner,
    close_distributed,
    exit_on_checkpoint_error,
    load_checkpoint_config,
    load_strictly,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument(
        '--thresholds',
        nargs='+',
        type=float,
        default=list(DEFAULT_THRESHOLDS),
        help='values of bg_thresh to try (default: 0.2 to 0.95 by 0.05)',
    )
    parser.add_argument(
        '--metric', default='mIoU', help="the evaluator's key to maximise"
    )
    parser.add_argument(
        '--out-config',
        help='write CONFIG with the chosen threshold here (for tools/test.py)',
    )
    parser.add_argument('--out-json', help='write the sweep and the choice')
    add_non_strict_arg(parser)
    add_common_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    bad = [t for t in args.thresholds if not 0.0 <= t <= 1.0]
    if bad:
        sys.exit(f'--thresholds must lie in [0, 1], got {bad}')
    cfg = load_checkpoint_config(args)
    try:
        cfg = validation_as_test(cfg)
    except KeyError as error:
        sys.exit(str(error.args[0]))
    head = cfg.model.get('decode_head') or {}
    if (
        head.get('type') != 'ZeroShotGroupHead'
        or head.get('bg_thresh') is None
    ):
        sys.exit(
            f'{args.config}: model.decode_head must be a ZeroShotGroupHead '
            'with a bg_thresh (a background class) to calibrate'
        )
    default = head['bg_thresh']
    load_strictly(cfg, args.checkpoint, strict=not args.non_strict)
    with exit_on_checkpoint_error():
        runner = build_runner(cfg)
        rows = sweep_background_threshold(
            runner, args.thresholds, metric=args.metric
        )
    close_distributed()
    chosen = choose_background_threshold(rows, default)
    print(f'| bg_thresh | validation {args.metric} |')
    print('|---|---|')
    for row in rows:
        mark = ' (chosen)' if row['bg_thresh'] == chosen else ''
        print(f'| {row["bg_thresh"]:.2f}{mark} | {row["score"]:.2f} |')
    print(f'chosen bg_thresh: {chosen} (the config has {default})')
    if args.out_json:
        with open(args.out_json, 'w', encoding='utf-8') as f:
            json.dump(
                dict(
                    config=args.config,
                    checkpoint=args.checkpoint,
                    metric=args.metric,
                    config_bg_thresh=default,
                    bg_thresh=chosen,
                    sweep=rows,
                ),
                f,
                indent=1,
            )
    if args.out_config:
        write_threshold_config(args.config, chosen, args.out_config)
        print(f'wrote {args.out_config}')


if __name__ == '__main__':
    main()
