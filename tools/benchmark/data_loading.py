"""Data-loading throughput from webdataset shards, per number of workers.

Streams image-caption shards through ``WebDatasetImageText`` (JPEG
decoding) and a config's training pipeline (default: the CC12M config's
DeiT-style augmentation at 224: random resized crop, flip, colour jitter,
RandAugment, random erasing, ``PackSegInputs``) into a ``DataLoader`` with
the config's collate function and batch size (256 per GPU), as training
reads it, for each number of dataloader workers in ``--workers``. The
first batch of every worker (start-up, the shuffle buffer filling) is not
timed; then ``--batches`` batches are (rounded up to a multiple of the
workers, which deliver batches in turn). Reports images/s per number of
workers and, with ``--model-img-per-s`` (the training step's images/s on
one device, e.g. from ``train_speed.py``), whether the model would wait
for data.

The shards: ``--shards`` (a folder of ``*.tar``, a world root with
``shards/``, or a brace / glob pattern). Without it, temporary shards are
written first and deleted after (2000 samples or what the run reads, 100
a shard): a synthetic world (``write_synthetic_world``, flat shapes, 256
px JPEGs), or with ``--photo-like`` photo-like JPEGs at ``--side`` px
(``photo_like.py``: 1/f textures, soft objects, edges, noise; quality 95
as img2dataset writes). The caption gives the shards' mean JPEG bytes
and single-thread OpenCV decode time per image.

With ``--gpu-decode`` the config is the GPU-decode one (the workers keep
the JPEG bytes and tokenize; ``GPUDecodeSegDataPreProcessor`` decodes and
augments the batch on ``--device``) and each timed batch also goes
through that data preprocessor: images/s of the whole data path, workers
plus device.

    python tools/benchmark/data_loading.py [--shards DIR_OR_PATTERN]
        [--photo-like [--side 256|384|512]] [--workers 0 1 2]
        [--batches 4] [--batch-size 256] [--model-img-per-s 6.94]
        [--config configs/groupvit_vit-s_cc12m.py] [--out FILE]
    python tools/benchmark/data_loading.py --gpu-decode --device cuda
        --photo-like --side 512 --workers 1 2 4 8
    python tools/benchmark/data_loading.py --tiny   # toy pipeline, 64 px
"""

from __future__ import annotations

import argparse
import functools
import glob
import os
import os.path as osp
import tempfile
import time

from _common import (
    REPO_ROOT,
    add_out_argument,
    default_device,
    markdown_table,
    register_modules,
    repo_path,
    report,
    synchronize,
)

DEFAULT_CONFIG = 'configs/groupvit_vit-s_cc12m.py'
GPU_DECODE_CONFIG = 'configs/groupvit_vit-s_cc12m_gpu-decode.py'
TINY_CONFIG = 'configs/quickstart/groupvit_tiny_toy-captions-64x64.py'


def find_shards(spec: str) -> list[str]:
    """The shard paths of a folder (its ``*.tar``, else ``shards/*.tar``),
    a glob pattern or a brace pattern."""
    from mixreorg_mmseg.datasets.shard_io import expand_shards

    if osp.isdir(spec):
        for pattern in ('*.tar', osp.join('shards', '*.tar')):
            shards = sorted(glob.glob(osp.join(spec, pattern)))
            if shards:
                return shards
        raise FileNotFoundError(f'no *.tar shards in {spec} or {spec}/shards')
    if any(c in spec for c in '*?['):
        shards = sorted(glob.glob(spec))
        if not shards:
            raise FileNotFoundError(f'no shard matches {spec}')
        return shards
    return expand_shards(spec)


def write_world(root: str, num_samples: int, image_size: int) -> list[str]:
    """A synthetic world's training shards (100 samples a shard, so up to
    ``num_samples / 100`` workers each read their own shards)."""
    from mixreorg_mmseg.datasets import write_synthetic_world

    out = write_synthetic_world(
        root,
        num_train=num_samples,
        num_val=0,
        image_size=image_size,
        samples_per_shard=100,
    )
    return out['shards']


def write_photo_like(
    root: str, num_samples: int, side: int, unique: int
) -> list[str]:
    """Photo-like shards (100 samples a shard) of ``unique`` distinct
    images repeated under new keys (see ``photo_like.py``)."""
    from photo_like import write_photo_like_shards

    return write_photo_like_shards(
        root, num_samples, side, samples_per_shard=100, unique=unique
    )


def jpeg_stats(shards: list[str], limit: int = 100) -> dict:
    """Mean JPEG bytes and mean single-thread OpenCV decode milliseconds
    of the first ``limit`` images of the shards."""
    import cv2
    import numpy as np

    from mixreorg_mmseg.datasets.shard_io import iter_raw_samples

    blobs = []
    for shard in shards:
        for raw in iter_raw_samples(shard, lambda error, num: None):
            if 'jpg' in raw:
                blobs.append(raw['jpg'])
            if len(blobs) >= limit:
                break
        if len(blobs) >= limit:
            break
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        start = time.perf_counter()
        for blob in blobs:
            cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
        seconds = time.perf_counter() - start
    finally:
        cv2.setNumThreads(threads)
    return dict(
        bytes=sum(map(len, blobs)) / max(len(blobs), 1),
        decode_ms=1e3 * seconds / max(len(blobs), 1),
        images=len(blobs),
    )


def cpu_seconds() -> float | None:
    """CPU seconds (user + system) used so far by this process and its
    live children (the dataloader workers), from ``/proc``; None where
    there is no ``/proc``. On a machine shared with other work, images
    per CPU second is what one dedicated core would deliver, where
    images per wall second depends on the neighbours."""
    tick = os.sysconf('SC_CLK_TCK')
    pids = {os.getpid()}
    try:
        for task in os.listdir('/proc/self/task'):
            with open(f'/proc/self/task/{task}/children') as f:
                pids.update(int(pid) for pid in f.read().split())
        total = 0
        for pid in pids:
            try:
                with open(f'/proc/{pid}/stat') as f:
                    fields = f.read().rsplit(')', 1)[1].split()
            except FileNotFoundError:  # a child that just ended
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
    except OSError:
        return None
    return total / tick


def loader_settings(cfg) -> dict:
    """Batch size, collate function, multiprocessing start method and
    OpenCV threads of the config's training dataloader and runtime."""
    from mmengine.registry import FUNCTIONS

    loader = cfg.train_dataloader
    collate = dict(loader.get('collate_fn') or dict(type='pseudo_collate'))
    collate_fn = functools.partial(FUNCTIONS.get(collate.pop('type')))
    if collate:
        collate_fn = functools.partial(collate_fn, **collate)
    mp_cfg = cfg.get('env_cfg', {}).get('mp_cfg', {})
    return dict(
        batch_size=loader.batch_size,
        collate_fn=collate_fn,
        mp_start_method=mp_cfg.get('mp_start_method', 'fork'),
        opencv_num_threads=mp_cfg.get('opencv_num_threads', 0),
    )


def time_loading(
    shards: list[str],
    pipeline: list,
    settings: dict,
    batch_size: int,
    workers: int,
    batches: int,
    shuffle_buffer: int,
    decode_images: bool = True,
    preprocessor=None,
) -> dict:
    """Seconds to the first batch of every worker, then images/s over
    ``batches`` (rounded up to a multiple of ``workers``) batches; with
    ``preprocessor`` (a data preprocessor on its device) every batch also
    goes through it (``training=True``), waited for on its device."""
    from torch.utils.data import DataLoader

    from mixreorg_mmseg.datasets import WebDatasetImageText

    readers = max(1, workers)
    timed = -(-batches // readers) * readers
    dataset = WebDatasetImageText(
        epoch_size=(readers + timed) * batch_size,
        shards=shards,
        pipeline=pipeline,
        shuffle_buffer=shuffle_buffer,
        batch_size=batch_size,
        decode_images=decode_images,
    )

    def step(batch) -> int:
        if preprocessor is None:
            return len(batch['data_samples'])
        out = preprocessor(batch, training=True)
        synchronize(out['inputs'].device)
        return out['inputs'].shape[0]

    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=settings['collate_fn'],
        multiprocessing_context=(
            settings['mp_start_method'] if workers else None
        ),
    )
    start = time.perf_counter()
    iterator = iter(loader)
    images = 0
    for _ in range(readers):
        step(next(iterator))  # the device's first call (kernels) untimed
    first = time.perf_counter() - start
    cpu = cpu_seconds()
    start = time.perf_counter()
    for _ in range(timed):
        images += step(next(iterator))
    seconds = time.perf_counter() - start
    if cpu is not None:
        cpu = cpu_seconds() - cpu
    del iterator  # stops the workers
    return dict(
        first=first,
        batches=timed,
        images=images,
        seconds=seconds,
        cpu_seconds=cpu,
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--config',
        help='config whose train_dataloader pipeline, batch size and '
        f'collate function are used (default: {DEFAULT_CONFIG}; with '
        f'--tiny {TINY_CONFIG}; with --gpu-decode {GPU_DECODE_CONFIG})',
    )
    parser.add_argument(
        '--gpu-decode',
        action='store_true',
        help="the config's workers keep JPEG bytes; its data preprocessor "
        'decodes and augments each batch on --device (timed with it)',
    )
    parser.add_argument(
        '--device',
        help='device of the --gpu-decode data preprocessor (default: cuda '
        'if available, else cpu)',
    )
    parser.add_argument(
        '--photo-like',
        action='store_true',
        help='temporary shards of photo-like JPEGs (quality 95) instead of '
        'the synthetic world',
    )
    parser.add_argument(
        '--side',
        type=int,
        default=256,
        help='image side of the --photo-like shards (img2dataset writes '
        'CC12M at 256; 384-512 kept by some)',
    )
    parser.add_argument(
        '--unique-images',
        type=int,
        default=200,
        help='distinct --photo-like images, repeated under new keys to '
        'fill the shards (drawing them is slow, decoding them is timed)',
    )
    parser.add_argument(
        '--tiny',
        action='store_true',
        help="the tiny quickstart config's pipeline (64 px crops), a "
        '64 px world: a smoke test in seconds',
    )
    parser.add_argument(
        '--shards',
        metavar='DIR_OR_PATTERN',
        help='shards to read (default: a temporary synthetic world)',
    )
    parser.add_argument('--workers', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--batch-size', type=int, help="default: the config's")
    parser.add_argument(
        '--batches',
        type=int,
        default=4,
        help='batches timed after the first one of every worker',
    )
    parser.add_argument(
        '--shuffle-buffer',
        type=int,
        default=0,
        help='samples shuffled in a buffer per worker (training: 1000; it '
        'delays the first batch, not the rate)',
    )
    parser.add_argument(
        '--model-img-per-s',
        type=float,
        help="the model's training images/s (one device), to compare",
    )
    parser.add_argument(
        '--num-samples',
        type=int,
        help='samples of the temporary world (default: 2000, 200 with '
        '--tiny, or what the run reads if more)',
    )
    parser.add_argument(
        '--world-image-size',
        type=int,
        help='image side of the temporary world (default 256; 64 with --tiny)',
    )
    add_out_argument(parser)
    return parser.parse_args(argv)


def main(argv=None) -> list[dict]:
    """Time, print the table (and write it with ``--out``); returns the
    rows as dicts."""
    import cv2
    from mmengine.config import Config

    args = parse_args(argv)
    register_modules()
    default = DEFAULT_CONFIG
    if args.gpu_decode:
        default = GPU_DECODE_CONFIG
    elif args.tiny:
        default = TINY_CONFIG
    config = repo_path(args.config or default)
    cfg = Config.fromfile(config)
    pipeline = cfg.train_dataloader.dataset.pipeline
    decode_images = cfg.train_dataloader.dataset.get('decode_images', True)
    settings = loader_settings(cfg)
    batch_size = args.batch_size or settings['batch_size']
    preprocessor, device = None, None
    if args.gpu_decode:
        from mmseg.registry import MODELS

        device = args.device or default_device()
        preprocessor = MODELS.build(cfg.model.data_preprocessor).to(device)

    with tempfile.TemporaryDirectory(prefix='data_loading_') as tmp:
        if args.shards:
            shards = find_shards(args.shards)
            source = f'{len(shards)} shards ({args.shards})'
        else:
            size = args.world_image_size or (64 if args.tiny else 256)
            needed = max(
                readers + -(-args.batches // readers) * readers
                for readers in (max(1, w) for w in args.workers)
            )
            # a margin: the shards are split over the workers by shard
            needed = -(-needed * batch_size * 6 // 5 // 100) * 100
            num = args.num_samples or max(200 if args.tiny else 2000, needed)
            start = time.perf_counter()
            if args.photo_like:
                unique = min(args.unique_images, num)
                shards = write_photo_like(tmp, num, args.side, unique)
                what = (
                    f'temporary photo-like shards ({num} samples of '
                    f'{unique} distinct images, {args.side} px JPEG q95'
                )
            else:
                shards = write_world(tmp, num, size)
                what = (
                    f'a temporary synthetic world ({num} samples, {size} px '
                    'JPEG'
                )
            source = (
                f'{what}, {len(shards)} shards, written in '
                f'{time.perf_counter() - start:.1f} s)'
            )
            print(source, flush=True)
        stats = jpeg_stats(shards)
        source += (
            f'; {stats["bytes"] / 1e3:.1f} kB and {stats["decode_ms"]:.2f} ms '
            f'(OpenCV, 1 thread) per JPEG over {stats["images"]}'
        )
        if preprocessor is not None:
            source += (
                f'; decoded and augmented on {device} by '
                f'{type(preprocessor).__name__}'
            )
        threads = cv2.getNumThreads()
        cv2.setNumThreads(settings['opencv_num_threads'])
        rows = []
        try:
            for workers in args.workers:
                row = time_loading(
                    shards,
                    pipeline,
                    settings,
                    batch_size,
                    workers,
                    args.batches,
                    args.shuffle_buffer,
                    decode_images,
                    preprocessor,
                )
                img_per_s = row['images'] / row['seconds']
                row.update(
                    workers=workers,
                    img_per_s=img_per_s,
                    img_per_s_per_worker=img_per_s / max(1, workers),
                )
                rows.append(row)
                print(
                    f'{workers} workers: {row["img_per_s"]:.1f} images/s',
                    flush=True,
                )
        finally:
            cv2.setNumThreads(threads)

    model = args.model_img_per_s
    header = [
        'workers',
        'batch',
        'batches timed',
        'first batches (s)',
        'images / s',
        'per worker',
        'images / CPU s',
    ]
    if model:
        header += ['model images / s', 'data / model', 'model waits']
    table = []
    for row in rows:
        cells = [
            row['workers'],
            batch_size,
            row['batches'],
            f'{row["first"]:.2f}',
            f'{row["img_per_s"]:.1f}',
            f'{row["img_per_s_per_worker"]:.1f}',
            (
                f'{row["images"] / row["cpu_seconds"]:.1f}'
                if row['cpu_seconds']
                else 'n/a'
            ),
        ]
        if model:
            cells += [
                f'{model:.2f}',
                f'{row["img_per_s"] / model:.2f}x',
                'yes' if row['img_per_s'] < model else 'no',
            ]
        table.append(cells)
    caption = (
        f'data loading: WebDatasetImageText + the train pipeline of '
        f'{osp.relpath(config, REPO_ROOT)}, {source}, shuffle buffer '
        f'{args.shuffle_buffer}, {settings["mp_start_method"]} workers\n'
    )
    report(
        caption + '\n' + markdown_table(header, table),
        args.out,
        __file__,
        argv,
    )
    return rows


if __name__ == '__main__':
    main()
