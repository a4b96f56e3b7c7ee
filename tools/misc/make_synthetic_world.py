"""Write the synthetic image-caption world: training shards + zero-shot set.

    python tools/misc/make_synthetic_world.py data/synthetic_world \
        [--num-train 10000] [--num-val 200] [--size 64] [--objects 1 3] \
        [--seed 0] [--shapes disc square ...] [--colours red blue ...] \
        [--samples-per-shard 1000] [--caption-templates full]

Options left out keep the defaults of ``SyntheticWorld`` (colour
independent of shape, colour words in 3 of 10 captions, radii from an
eighth to a third of the side, every caption sentence frame of the
``full`` set); ``world.json`` records every setting.

Training reads ``ROOT/shards/*.tar``; zero-shot evaluation reads
``ROOT/{images,annotations}/{seen,unseen}`` with ``ROOT/classes.txt``.
"""

import argparse
import time

from mixreorg_mmseg.datasets import write_synthetic_world
from mixreorg_mmseg.datasets.synthetic_world import (
    BACKGROUNDS,
    CAPTION_TEMPLATES,
    COLOURS,
    SHAPES,
    TEXTURES,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='output folder')
    parser.add_argument('--num-train', type=int, default=10000)
    parser.add_argument(
        '--num-val', type=int, default=200, help='images per split'
    )
    parser.add_argument('--size', type=int, default=64, help='image side')
    parser.add_argument(
        '--objects',
        type=int,
        nargs=2,
        default=(1, 3),
        metavar=('MIN', 'MAX'),
        help='objects per image',
    )
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--shapes', nargs='+', choices=sorted(SHAPES))
    parser.add_argument('--colours', nargs='+', choices=sorted(COLOURS))
    parser.add_argument(
        '--textures', nargs='+', choices=TEXTURES, help='object fills'
    )
    parser.add_argument(
        '--backgrounds',
        nargs='+',
        choices=BACKGROUNDS,
        help='background kinds',
    )
    parser.add_argument(
        '--radius-range',
        type=float,
        nargs=2,
        metavar=('LOW', 'HIGH'),
        help='object circumradius as fractions of the image side',
    )
    parser.add_argument(
        '--colour-prob',
        type=float,
        help='chance that a caption names the colours',
    )
    parser.add_argument(
        '--texture-prob',
        type=float,
        help='chance that a caption names non-solid textures',
    )
    parser.add_argument(
        '--background-prob',
        type=float,
        help='chance that a caption names the background',
    )
    parser.add_argument(
        '--colour-by-shape',
        type=float,
        help="chance that an object takes its shape's own colour",
    )
    parser.add_argument(
        '--caption-templates',
        choices=sorted(CAPTION_TEMPLATES),
        help="the captions' sentence frames (default: full)",
    )
    parser.add_argument('--num-heldout', type=int, help='held-out pairs')
    parser.add_argument('--samples-per-shard', type=int, default=1000)
    args = parser.parse_args(argv)
    # unset options keep SyntheticWorld's defaults
    world_kwargs = {
        key: value
        for key, value in dict(
            textures=args.textures,
            backgrounds=args.backgrounds,
            radius_range=args.radius_range,
            colour_prob=args.colour_prob,
            texture_prob=args.texture_prob,
            background_prob=args.background_prob,
            colour_by_shape=args.colour_by_shape,
            caption_templates=args.caption_templates,
            num_heldout=args.num_heldout,
        ).items()
        if value is not None
    }

    started, shown = {}, {}

    def progress(split, done, total):
        # a line per tenth of each split: readable in logs and in CI
        started.setdefault(split, time.perf_counter())
        tenth = done * 10 // total
        if tenth > shown.get(split, 0):
            shown[split] = tenth
            rate = done / max(time.perf_counter() - started[split], 1e-9)
            print(f'{split}: {done}/{total} ({rate:.0f} images/s)', flush=True)

    begin = time.perf_counter()
    out = write_synthetic_world(
        args.root,
        num_train=args.num_train,
        num_val=args.num_val,
        image_size=args.size,
        objects=tuple(args.objects),
        seed=args.seed,
        shapes=args.shapes,
        colours=args.colours,
        samples_per_shard=args.samples_per_shard,
        progress=progress,
        **world_kwargs,
    )
    seconds = time.perf_counter() - begin
    total = args.num_train + 2 * args.num_val * bool(out['splits'])
    print(
        f'wrote {total} images in {seconds:.1f} s '
        f'({total / max(seconds, 1e-9):.0f} images/s) under {out["root"]}'
    )
    print(f'  training shards: {out["shard_pattern"] or out["shards"]}')
    for split, paths in out['splits'].items():
        print(f'  {split}: {paths["img_dir"]}, {paths["ann_dir"]}')
    print(f'  classes: {", ".join(out["classes"])} ({out["classes_file"]})')
    pairs = ', '.join('+'.join(p) for p in out['heldout_pairs'])
    print(f'  held out of training (the unseen split): {pairs}')


if __name__ == '__main__':
    main()
