"""Pack image-caption pairs listed in a CSV/TSV into webdataset shards.

The shards follow img2dataset's layout (``00000.tar`` with ``KEY.jpg``,
``KEY.txt``, ``KEY.json``) and are read by ``WebDatasetImageText``. Rows
are read by ``ImageCaptionDataset`` (same columns, caption cleaning and
skipping of empty captions / missing images); images that are not JPEG
are re-encoded to JPEG.

    python tools/dataset_converters/pack_image_text_shards.py \
        data/toy/train_captions.tsv data/toy/images/train data/toy/shards \
        --samples-per-shard 1000
"""

import argparse
import os.path as osp

import mmcv
from mmengine.utils import ProgressBar

import mixreorg_mmseg  # noqa: F401  (registration)
from mixreorg_mmseg.datasets import (
    ImageCaptionDataset,
    encode_jpeg,
    write_shards,
)

JPEG_MAGIC = b'\xff\xd8\xff'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('ann_file', help='.csv or .tsv with a header row')
    parser.add_argument('img_root', help='folder the image paths are in')
    parser.add_argument('out_dir', help='folder of the shards')
    parser.add_argument('--samples-per-shard', type=int, default=1000)
    parser.add_argument('--prefix', default='', help='shard name prefix')
    parser.add_argument('--image-key', default='image')
    parser.add_argument('--caption-key', default='caption')
    parser.add_argument(
        '--max-skip-ratio',
        type=float,
        default=0.1,
        help='largest fraction of rows that may be skipped',
    )
    return parser.parse_args(argv)


def samples(data_list, progress):
    """``write_shards`` samples of the dataset's rows, keyed 000000000..."""
    for index, info in enumerate(data_list):
        with open(info['img_path'], 'rb') as file:
            data = file.read()
        if not data.startswith(JPEG_MAGIC):
            img = mmcv.imfrombytes(data)
            if img is None:
                raise ValueError(f'{info["img_path"]}: cannot be decoded')
            data = encode_jpeg(img)
        yield dict(
            key=f'{index:09d}',
            jpg=data,
            txt=info['caption'],
            json=dict(
                key=f'{index:09d}',
                caption=info['caption'],
                source=osp.basename(info['img_path']),
            ),
        )
        progress.update()


def main(argv=None):
    args = parse_args(argv)
    dataset = ImageCaptionDataset(
        ann_file=osp.abspath(args.ann_file),
        data_prefix=dict(img_path=args.img_root),
        image_key=args.image_key,
        caption_key=args.caption_key,
        max_skip_ratio=args.max_skip_ratio,
        serialize_data=False,
    )
    data_list = [dataset.get_data_info(i) for i in range(len(dataset))]
    progress = ProgressBar(len(data_list))
    shards = write_shards(
        samples(data_list, progress),
        args.out_dir,
        samples_per_shard=args.samples_per_shard,
        prefix=args.prefix,
    )
    print(
        f'\nwrote {len(data_list)} samples in {len(shards)} shards to '
        f'{args.out_dir}'
    )


if __name__ == '__main__':
    main()
