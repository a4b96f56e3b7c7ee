"""What the model grouped at each grouping stage, beside its class mask.

    python tools/visualize_groups.py IMAGE CONFIG CHECKPOINT \
        --classes "cat,dog,grass" [--out groups.png] [--device cpu]
        [--bg-thresh 0.9|none] [--opacity 0.5] [--cfg-options k=v ...]

Writes one PNG: the image; for every grouping stage, each group in its own
colour with the group boundaries in white (the soft assignments chained up
to that stage, as GroupViT's Fig. 4 shows them); and the class mask with
its legend. All from one whole-image forward pass, so groups and classes
match (the config's sliding window is not used here). The picture to look
at first when a segmenter misbehaves: are the groups wrong, or their names?
"""

import argparse
import os.path as osp

import mixreorg_mmseg  # noqa: F401  (mmseg on mmcv-lite, safe checkpoints)
from mixreorg_mmseg.apis import zero_shot_groups
from mixreorg_mmseg.cli import (
    add_zero_shot_image_args,
    zero_shot_model_from_args,
)
from mixreorg_mmseg.datasets import read_image
from mixreorg_mmseg.utils.seg_drawing import (
    class_panels,
    stage_panels,
    titled_row,
    upscale,
    write_rgb,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_zero_shot_image_args(parser, default_out='groups.png')
    args = parser.parse_args(argv)
    image = read_image(args.image, channel_order='rgb')  # names a bad file
    model = zero_shot_model_from_args(args)
    groups, mask = zero_shot_groups(model, args.image)
    classes = model.dataset_meta['classes']
    palette = model.dataset_meta['palette']
    image, maps = upscale(image, [*groups, mask])
    groups, mask = maps[:-1], maps[-1]
    panels, titles = stage_panels(
        image, groups, model.backbone.num_output_groups, args.opacity
    )
    panels, titles = [image, *panels], [osp.basename(args.image), *titles]
    more_panels, more_titles, _ = class_panels(
        image, mask, classes, palette, args.opacity
    )
    picture = titled_row(panels + more_panels, titles + more_titles)
    write_rgb(picture, args.out)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
