"""Take a zero-shot mIoU apart: recognition, grouping, segment classes.

    python tools/analysis_tools/segment_diagnostics.py CONFIG CHECKPOINT \
        --img-dir data/synthetic_world/images/unseen \
        --ann-dir data/synthetic_world/annotations/unseen \
        [--classes data/synthetic_world/classes.txt] [--cfg-options ...]

Prints the numbers of :mod:`mixreorg_mmseg.apis.segment_diagnostics`
(image-level top-1, groups used per stage, segments per image, purity,
foreground segment accuracy, best class score of background and of
foreground segments, and the grouping's bound: the mIoU if every segment
took its majority class) as a table. The classes default to the lines of
``classes.txt`` beside the image folder's split root.
"""

import argparse
import json
import os.path as osp

from mmengine.config import DictAction

from mixreorg_mmseg.apis import init_zero_shot_model
from mixreorg_mmseg.apis.segment_diagnostics import (
    folder_split,
    segment_diagnostics,
)


def diagnostics_rows(result: dict) -> list[tuple[str, str]]:
    """``(name, value)`` rows of a :func:`segment_diagnostics` result."""
    groups = ' / '.join(f'{g:.2f}' for g in result['groups_used'])
    return [
        ('images', str(result['num_images'])),
        ('image top-1 class present', f'{result["image_top1"]:.3f}'),
        ('groups used per stage', groups),
        ('final segments per image', f'{result["segments_per_image"]:.2f}'),
        ('segment purity', f'{result["purity"]:.3f}'),
        ('foreground segment accuracy', f'{result["fg_segment_acc"]:.3f}'),
        (
            'best score, background segments',
            f'{result["bg_segment_score"]:.3f}',
        ),
        (
            'best score, foreground segments',
            f'{result["fg_segment_score"]:.3f}',
        ),
        (
            'grouping bound, mIoU (each segment its majority class)',
            f'{result["grouping_bound"]:.1f}',
        ),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--img-dir', required=True)
    parser.add_argument('--ann-dir', required=True)
    parser.add_argument(
        '--classes',
        help='class names, one a line (default: classes.txt two folders '
        'above --img-dir)',
    )
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out-json', help='also write the numbers here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)

    classes = args.classes or osp.join(
        osp.dirname(osp.dirname(osp.abspath(args.img_dir))), 'classes.txt'
    )
    if not osp.isfile(classes):
        raise FileNotFoundError(f'{classes} not found: give --classes')
    with open(classes, encoding='utf-8') as f:
        names = [line.strip() for line in f if line.strip()]
    model = init_zero_shot_model(
        args.config,
        args.checkpoint,
        names,
        device=args.device,
        cfg_options=args.cfg_options,
    )
    images, labels = folder_split(args.img_dir, args.ann_dir)
    result = segment_diagnostics(model, images, labels)
    print('| measure | value |\n|---|---|')
    for name, value in diagnostics_rows(result):
        print(f'| {name} | {value} |')
    if args.out_json:
        with open(args.out_json, 'w', encoding='utf-8') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
