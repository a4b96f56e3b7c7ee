"""Build COCO-Object label maps from COCO's instance annotations.

    python tools/dataset_converters/coco_object.py COCO_ROOT \
        [--out-dir data/coco_object] [--split val2017] [--nproc 4]

COCO_ROOT is COCO as downloaded: ``<split>/`` images and
``annotations/instances_<split>.json``. Writes
``OUT_DIR/annotations/<split>/<id>_instanceTrainIds.png`` (0 background,
1..80 COCO's thing classes; see ``mixreorg_mmseg.datasets.coco_object``)
and links ``OUT_DIR/images/<split>`` to the images. Needs pycocotools
(``pip install pycocotools``).
"""

import argparse
import os
import os.path as osp
import sys

from mixreorg_mmseg.datasets.coco_object import write_coco_object


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('coco_root', help='COCO root (images + annotations)')
    parser.add_argument(
        '--out-dir',
        default='data/coco_object',
        help='COCO-Object root to write (default: data/coco_object)',
    )
    parser.add_argument('--split', default='val2017', help='COCO split')
    parser.add_argument(
        '--nproc', type=int, default=1, help='worker processes'
    )
    return parser.parse_args(argv)


def link_images(coco_root: str, out_dir: str, split: str) -> None:
    """``OUT_DIR/images/<split>`` -> ``COCO_ROOT/<split>`` (if missing)."""
    src = osp.abspath(osp.join(coco_root, split))
    dst = osp.join(out_dir, 'images', split)
    if osp.lexists(dst):
        return
    if not osp.isdir(src):
        sys.exit(f'COCO images not found: {src}')
    os.makedirs(osp.dirname(dst), exist_ok=True)
    os.symlink(src, dst, target_is_directory=True)


def main(argv=None):
    args = parse_args(argv)
    try:
        import pycocotools  # noqa: F401
    except ImportError:
        sys.exit('this converter needs pycocotools: pip install pycocotools')
    ann_file = osp.join(
        args.coco_root, 'annotations', f'instances_{args.split}.json'
    )
    count = write_coco_object(ann_file, args.out_dir, args.split, args.nproc)
    link_images(args.coco_root, args.out_dir, args.split)
    print(
        f'\nwrote {count} label maps to '
        f'{osp.join(args.out_dir, "annotations", args.split)}'
    )


if __name__ == '__main__':
    main()
