"""Zero-shot inference latency per image of the full-size model.

Runs what ``tools/test.py`` runs for every image: ``model.test_step``
(data preprocessor, MMSeg's ``EncoderDecoder.predict`` with whole or
sliding-window inference, the zero-shot head, ``postprocess_result``)
under ``torch.no_grad``, batch 1, on a random image already at the test
size (the pipeline's resize to short side 448 is not timed; the
prediction is not resized back). The model is the config's (GroupViT
ViT-S with the zero-shot head, VOC's background threshold and prompt
names) with random weights: the latency does not depend on them. Two
inputs, at the paper's test resolution:

* whole: one ``crop x crop`` image (448 x 448) in ``mode='whole'``;
* slide: a ``--shape H W`` image (default ``crop x 2 crop``, 448 x 896) in
  the config's ``mode='slide'`` (crop 448, stride 224: 3 windows).

The zero-shot head embeds the class prompts once and caches them; each
row starts with an empty cache, times its first call (text embeddings
included; in the first row also the runtime's one-off start-up), then the
text embeddings alone (reported separately, a one-off cost per class set),
then runs ``--warmup`` untimed calls and reports the median of ``--runs``
timed ones. ``--bf16`` adds rows under bf16 autocast
(what ``tools/test.py ... --cfg-options test_cfg.fp16=True`` runs on
CPUs: MMEngine's ``TestLoop`` wraps ``test_step`` in its ``autocast``).
The classes are the config's test dataset's (PASCAL VOC: 20 classes and
background, prompted with the head's templates) unless ``--classes``.

    python tools/benchmark/zero_shot_latency.py --bf16 [--config
        configs/zero_shot/groupvit_vit-s_voc12.py] [--shape 448 896]
        [--warmup 2] [--runs 5] [--device cpu|cuda] [--out FILE]
    python tools/benchmark/zero_shot_latency.py --tiny   # the toy model
"""

from __future__ import annotations

import argparse
import os.path as osp
import time

import torch
from _common import (
    REPO_ROOT,
    add_out_argument,
    count_params,
    default_device,
    markdown_table,
    ratio,
    register_modules,
    repo_path,
    report,
    synchronize,
    time_steps,
)

DEFAULT_CONFIG = 'configs/zero_shot/groupvit_vit-s_voc12.py'
TINY_CONFIG = 'configs/zero_shot/groupvit_tiny_toy-segmentation-64x64.py'
#: The classes when the config's test dataset names none (a folder).
VOC_DATASET = 'PascalVOCDataset'


def config_classes(cfg) -> tuple[str, ...]:
    """The classes of the config's test dataset type (its ``METAINFO``);
    PASCAL VOC's (background first) when it has none (a folder data set
    reads them from disk)."""
    from mmseg.registry import DATASETS

    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    for name in (dataset.get('type'), VOC_DATASET):
        cls = DATASETS.get(name) if name else None
        classes = getattr(cls, 'METAINFO', {}).get('classes')
        if classes:
            return tuple(classes)
    raise RuntimeError('no class names: give --classes')


def num_windows(shape, crop, stride) -> int:
    """Windows of MMSeg's ``slide_inference`` on an ``H x W`` input."""
    count = 1
    for size, c, s in zip(shape, crop, stride, strict=True):
        count *= max(size - c + s - 1, 0) // s + 1
    return count


def make_batch(shape: tuple[int, int], seed: int = 0) -> dict:
    """One random image as the test dataloader gives it after
    ``PackSegInputs`` (uint8 BGR ``[3, H, W]`` and its metainfo)."""
    from mmseg.structures import SegDataSample

    generator = torch.Generator().manual_seed(seed)
    image = torch.randint(
        0, 256, (3, *shape), dtype=torch.uint8, generator=generator
    )
    meta = dict(
        img_path='random.jpg',
        ori_shape=tuple(shape),
        img_shape=tuple(shape),
        pad_shape=tuple(shape),
        scale_factor=(1.0, 1.0),
        flip=False,
        flip_direction=None,
        reduce_zero_label=False,
    )
    return dict(inputs=[image], data_samples=[SegDataSample(metainfo=meta)])


def time_row(
    model,
    classes,
    test_cfg: dict,
    shape: tuple[int, int],
    bf16: bool,
    args: argparse.Namespace,
) -> dict:
    """Seconds of one configuration: first call, text embeddings, and the
    median per image."""
    from mmengine.config import ConfigDict
    from mmengine.runner.amp import autocast

    from mixreorg_mmseg.models.decode_heads import set_zero_shot_classes

    device = torch.device(args.device)
    model.test_cfg = ConfigDict(test_cfg)
    head = set_zero_shot_classes(model, classes)  # empties the text cache
    data = make_batch(shape)

    def precision():
        # MMEngine's TestLoop: `with autocast(enabled=fp16)`
        # (no dtype when off: MMEngine checks bf16 support even then)
        return autocast(
            device_type=device.type,
            dtype=torch.bfloat16 if bf16 else None,
            enabled=bf16,
        )

    def run():
        with torch.no_grad(), precision():
            outputs = model.test_step(data)
        assert outputs[0].pred_sem_seg.shape == shape

    def embed_text():
        with torch.no_grad(), precision():
            head.class_embeddings(
                model.encode_text, model.text_weights_version()
            )

    first = time_steps(run, 1, warmup=0, device=device)
    set_zero_shot_classes(model, classes)
    text = time_steps(embed_text, 1, warmup=0, device=device)
    latency = time_steps(run, args.runs, warmup=args.warmup, device=device)
    return dict(first=first, text=text, latency=latency)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--config',
        help=f'zero-shot test config (default: {DEFAULT_CONFIG}; with '
        f'--tiny {TINY_CONFIG})',
    )
    parser.add_argument(
        '--tiny',
        action='store_true',
        help='the tiny toy model at 64 px (a smoke test in seconds)',
    )
    parser.add_argument(
        '--classes',
        nargs='+',
        help="class names (default: the config's test dataset's, or "
        "PASCAL VOC's 21)",
    )
    parser.add_argument(
        '--modes', nargs='+', choices=('whole', 'slide'), default=None
    )
    parser.add_argument(
        '--crop-size',
        type=int,
        help="window side (default: the config's slide crop, else the "
        "backbone's img_size); the whole-mode input is crop x crop",
    )
    parser.add_argument(
        '--stride',
        type=int,
        help="window stride (default: the config's, else crop / 2)",
    )
    parser.add_argument(
        '--shape',
        nargs=2,
        type=int,
        metavar=('H', 'W'),
        help='slide-mode input size (default: crop x 2 crop)',
    )
    parser.add_argument(
        '--bf16', action='store_true', help='also time under bf16 autocast'
    )
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--runs', type=int, default=5)
    parser.add_argument('--device', default=default_device())
    add_out_argument(parser)
    return parser.parse_args(argv)


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def main(argv=None) -> list[dict]:
    """Time, print the table (and write it with ``--out``); returns the
    rows as dicts."""
    from mmengine.config import Config
    from mmseg.registry import MODELS

    args = parse_args(argv)
    register_modules()
    config = repo_path(
        args.config or (TINY_CONFIG if args.tiny else DEFAULT_CONFIG)
    )
    cfg = Config.fromfile(config)
    classes = tuple(args.classes or config_classes(cfg))
    test_cfg = cfg.model.get('test_cfg') or {}
    slide = test_cfg.get('mode') == 'slide'
    crop = _pair(
        args.crop_size
        or (test_cfg['crop_size'] if slide else cfg.model.backbone.img_size)
    )
    if args.stride:
        stride = _pair(args.stride)
    elif slide and args.crop_size is None:
        stride = _pair(test_cfg['stride'])
    else:
        stride = (crop[0] // 2, crop[1] // 2)
    slide_shape = tuple(args.shape or (crop[0], 2 * crop[1]))

    torch.manual_seed(0)
    start = time.perf_counter()
    model = MODELS.build(cfg.model).to(args.device).eval()
    synchronize(args.device)
    build = time.perf_counter() - start

    inputs = dict(
        whole=(dict(mode='whole'), crop),
        slide=(
            dict(mode='slide', crop_size=crop, stride=stride),
            slide_shape,
        ),
    )
    rows = []
    for bf16 in (False, True) if args.bf16 else (False,):
        for mode in args.modes or ('whole', 'slide'):
            row_cfg, shape = inputs[mode]
            result = time_row(model, classes, row_cfg, shape, bf16, args)
            result.update(
                mode=mode,
                precision='bf16' if bf16 else 'fp32',
                shape=shape,
                windows=(
                    num_windows(shape, crop, stride) if mode == 'slide' else 1
                ),
            )
            rows.append(result)
            print(
                f'{mode} {result["precision"]}: '
                f'{result["latency"]:.4f} s/image',
                flush=True,
            )

    table = []
    for row in rows:
        fp32 = next(
            (
                r['latency']
                for r in rows
                if r['mode'] == row['mode'] and r['precision'] == 'fp32'
            ),
            None,
        )
        table.append(
            (
                row['mode'],
                row['precision'],
                f'{row["shape"][0]}x{row["shape"][1]}',
                row['windows'],
                f'{row["text"]:.4f}',
                f'{row["first"]:.4f}',
                f'{row["latency"]:.4f}',
                f'{1 / row["latency"]:.2f}',
                ratio(fp32, row['latency']),
            )
        )
    header = (
        'mode',
        'precision',
        'input',
        'windows',
        'text embeddings (s, once)',
        'first call (s)',
        's / image',
        'images / s',
        'speed vs fp32',
    )
    caption = (
        f'zero-shot test_step, batch 1, {osp.relpath(config, REPO_ROOT)} '
        f'({count_params(model) / 1e6:.2f}M parameters, random weights, '
        f'built in {build:.1f} s), {len(classes)} classes, crop '
        f'{crop[0]}x{crop[1]} stride {stride[0]}x{stride[1]}, median of '
        f'{args.runs} after {args.warmup} warm-up, device {args.device}, '
        f'{torch.get_num_threads()} threads, torch {torch.__version__}\n'
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
