"""Zero-shot segmentation of one image with the classes you name.

    python tools/demo.py IMAGE CONFIG CHECKPOINT --classes "cat,dog,grass"
        [--out demo.png] [--device cpu|cuda:0] [--bg-thresh 0.9|none]
        [--opacity 0.5] [--cfg-options k=v ...]

Writes a PNG: the image with the predicted classes overlaid (MMSeg's
SegLocalVisualizer) and a legend giving each class's colour and share of
the pixels. With a background threshold (the config's, or --bg-thresh),
"background" is class 0 and pixels no class claims get it.
"""

import argparse
import os.path as osp

import mixreorg_mmseg  # noqa: F401  (mmseg on mmcv-lite, safe checkpoints)
from mixreorg_mmseg.apis import zero_shot_predict
from mixreorg_mmseg.cli import (
    add_zero_shot_image_args,
    zero_shot_model_from_args,
)
from mixreorg_mmseg.datasets import read_image
from mixreorg_mmseg.utils.seg_drawing import (
    class_panels,
    format_shares,
    titled_row,
    upscale,
    write_rgb,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_zero_shot_image_args(parser, default_out='demo.png')
    args = parser.parse_args(argv)
    image = read_image(args.image, channel_order='rgb')  # names a bad file
    model = zero_shot_model_from_args(args)
    result = zero_shot_predict(model, args.image)
    mask = result.pred_sem_seg.data[0].cpu().numpy()
    classes = model.dataset_meta['classes']
    palette = model.dataset_meta['palette']
    image, (mask,) = upscale(image, [mask])
    panels, titles, shares = class_panels(
        image, mask, classes, palette, args.opacity
    )
    picture = titled_row(
        panels,
        [osp.basename(args.image), titles[1]],
    )
    write_rgb(picture, args.out)
    print(f'wrote {args.out} ({format_shares(classes, shares)})')


if __name__ == '__main__':
    main()
