"""Write the toy shapes image-caption set (text-supervised training check).

    python tools/misc/make_toy_image_captions.py data/toy_image_captions \
        [--num 512] [--size 64] [--seed 0] [--split train]
"""

import argparse

from mixreorg_mmseg.datasets import write_toy_image_captions


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='output folder')
    parser.add_argument('--num', type=int, default=512, help='pairs')
    parser.add_argument('--size', type=int, default=64, help='image side')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--split', default='train')
    args = parser.parse_args(argv)
    ann_file = write_toy_image_captions(
        args.root, args.num, size=args.size, seed=args.seed, split=args.split
    )
    print(f'wrote {args.num} image-caption pairs, listed in {ann_file}')


if __name__ == '__main__':
    main()
