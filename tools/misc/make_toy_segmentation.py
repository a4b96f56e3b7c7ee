"""Write the toy shapes segmentation folder (installation check data).

    python tools/misc/make_toy_segmentation.py data/toy_segmentation \
        [--train 128] [--val 32] [--size 64] [--seed 0]
"""

import argparse

from mixreorg_mmseg.datasets import write_toy_segmentation


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='output folder')
    parser.add_argument('--train', type=int, default=128)
    parser.add_argument('--val', type=int, default=32)
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    counts = write_toy_segmentation(
        args.root,
        {'train': args.train, 'val': args.val},
        size=args.size,
        seed=args.seed,
    )
    print(f'wrote {counts} to {args.root}')


if __name__ == '__main__':
    main()
