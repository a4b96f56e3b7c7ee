"""Photo-like JPEG shards for data-loading benchmarks (nothing downloaded).

``data_loading.py --photo-like`` imports it; run as a script it compares
the JPEG bytes and decode time of photo-like images with those of photos
you have (centre square, resized to ``--side``, quality 95), to check the
stand-in against your own data:

    python tools/benchmark/photo_like.py --side 256 512 --photos IMG...

JPEG size and
decode time depend on the content: the synthetic world's flat shapes on
smooth backgrounds compress to a few kB and decode fast, photos do not.
The images here are built from what makes photos photos for a JPEG codec:

- a 1/f amplitude spectrum (natural images' power falls as 1/f^2), for
  luminance and, weaker and smoother, for two opponent colour channels;
- a smooth illumination gradient (sky, vignette);
- soft-edged objects (ellipses and rotated rectangles) with their own
  colour and 1/f texture, and a few hard straight edges;
- sensor noise of 1-3 grey levels.

Written as img2dataset writes CC12M (``KEY.jpg`` at quality 95, its
default ``encode_quality``; ``KEY.txt``; ``KEY.json``; ``_stats.json``),
square at ``side`` (img2dataset's default ``resize_mode='border'`` with
``--image_size side``), through the package's shard writer.
"""

from __future__ import annotations

import argparse
import os.path as osp
import time
from collections.abc import Iterator

import cv2
import numpy as np
from _common import markdown_table
from caption_tokens import cc12m_like_captions

from mixreorg_mmseg.datasets import encode_jpeg, write_shards

#: img2dataset's default JPEG quality (``encode_quality``).
JPEG_QUALITY = 95

# opponent colour space (luminance, red-green, blue-yellow) -> RGB
_OPPONENT_TO_RGB = np.array(
    [[1.0, 0.6, 0.3], [1.0, -0.35, 0.3], [1.0, 0.0, -0.8]], dtype=np.float32
)
# objects' texture: mostly luminance, a little colour
_TEXTURE_CHANNELS = np.array([1.0, 0.2, 0.2], dtype=np.float32)


def pink_noise(
    rng: np.random.Generator, side: int, exponent: float
) -> np.ndarray:
    """(side, side) float32 noise of amplitude spectrum 1/f^exponent,
    zero mean, unit standard deviation."""
    fy = np.fft.fftfreq(side)[:, None]
    fx = np.fft.rfftfreq(side)[None, :]
    freq = np.sqrt(fx * fx + fy * fy)
    freq[0, 0] = 1.0
    spectrum = rng.standard_normal((side, side // 2 + 1)) + 1j * (
        rng.standard_normal((side, side // 2 + 1))
    )
    spectrum /= freq**exponent
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=(side, side)).astype(np.float32)
    return field / (field.std() + 1e-6)


def _soft_mask(
    rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, side: int
) -> np.ndarray:
    """(side, side) float32 in [0, 1]: an ellipse or rotated rectangle
    with an edge 0.5-6 px wide."""
    cy, cx = (rng.uniform(-0.1, 1.1, 2) * side).astype(np.float32)
    ry, rx = (rng.uniform(0.05, 0.45, 2) * side).astype(np.float32)
    angle = rng.uniform(0, np.pi)
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u = ((xx - cx) * cos + (yy - cy) * sin) / rx
    v = (-(xx - cx) * sin + (yy - cy) * cos) / ry
    if rng.random() < 0.6:
        distance = (np.sqrt(u * u + v * v) - 1.0) * min(rx, ry)
    else:
        distance = (np.maximum(np.abs(u), np.abs(v)) - 1.0) * min(rx, ry)
    width = rng.uniform(0.5, 6.0)
    return 1.0 / (1.0 + np.exp(np.clip(distance / np.float32(width), -30, 30)))


def photo_like_image(rng: np.random.Generator, side: int) -> np.ndarray:
    """One (side, side, 3) uint8 RGB photo-like image."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    half = max(side // 2, 8)  # chroma is smooth: drawn at half resolution
    chroma = [
        np.kron(pink_noise(rng, half, 1.4), np.ones((2, 2), np.float32))[
            :side, :side
        ]
        * rng.uniform(4, 14)
        for _ in range(2)
    ]
    opponent = np.stack(
        [pink_noise(rng, side, 1.0) * rng.uniform(14, 32), *chroma], axis=-1
    )
    base = rng.uniform([60, -30, -30], [190, 30, 30]).astype(np.float32)
    opponent += base
    tilt = rng.uniform(-50, 50) * (yy / side - 0.5) + rng.uniform(-20, 20) * (
        xx / side - 0.5
    )
    opponent[..., 0] += tilt
    # one texture field for all objects, each at its own offset and gain
    texture = pink_noise(rng, side, rng.uniform(0.8, 1.4))
    for _ in range(int(rng.integers(3, 9))):
        mask = _soft_mask(rng, yy, xx, side)[..., None]
        colour = rng.uniform([30, -50, -50], [230, 50, 50]).astype(np.float32)
        shift = rng.integers(0, side, 2)
        grain = np.roll(texture, tuple(shift), axis=(0, 1))
        gain = np.float32(rng.uniform(4, 24)) * _TEXTURE_CHANNELS
        opponent += mask * (colour + grain[..., None] * gain - opponent)
    for _ in range(int(rng.integers(0, 4))):  # hard edges: poles, horizons
        a, b = rng.uniform(-1, 1, 2).astype(np.float32)
        line = a * (xx / side - 0.5) + b * (yy / side - 0.5)
        side_of = line > rng.uniform(-0.2, 0.2)
        band = np.abs(line) < rng.uniform(0.003, 0.03)
        opponent[..., 0] += (band & side_of) * np.float32(rng.uniform(-60, 60))
    rgb = opponent @ _OPPONENT_TO_RGB.T
    rgb += rng.standard_normal(rgb.shape, np.float32) * rng.uniform(0.5, 2)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def photo_like_samples(
    num: int, side: int, seed: int = 0, unique: int | None = None
) -> Iterator[dict]:
    """``num`` samples for :func:`~mixreorg_mmseg.datasets.write_shards`
    (``key``, ``jpg`` at quality 95, ``txt``, ``json`` as img2dataset
    writes: key, caption, width, height, status), deterministic in
    ``seed``.

    ``unique``: draw only this many images and repeat their JPEG bytes
    under new keys and captions (drawing a 512 px image takes about 0.2 s
    of a core, decoding it 2.5 ms: a benchmark needs the bytes, not
    thousands of distinct pictures). None: every image is new.
    """
    rng = np.random.default_rng([seed, side])
    drawn: list[bytes] = []
    for i, caption in enumerate(cc12m_like_captions(num, seed)):
        if unique is None or len(drawn) < unique:
            image = photo_like_image(rng, side)
            bgr = np.ascontiguousarray(image[..., ::-1])
            drawn.append(encode_jpeg(bgr, JPEG_QUALITY))
            jpg = drawn[-1] if unique is not None else drawn.pop()
        else:
            jpg = drawn[i % unique]
        key = f'{i:09d}'
        meta = dict(
            key=key, caption=caption, width=side, height=side, status='success'
        )
        yield dict(key=key, jpg=jpg, txt=caption, json=meta)


def write_photo_like_shards(
    root: str,
    num_samples: int,
    side: int,
    samples_per_shard: int = 100,
    seed: int = 0,
    unique: int | None = None,
) -> list[str]:
    """Write ``num_samples`` photo-like samples as shards
    ``ROOT/shards/00000.tar...`` (see :func:`photo_like_samples`);
    returns their paths."""
    return write_shards(
        photo_like_samples(num_samples, side, seed, unique),
        osp.join(root, 'shards'),
        samples_per_shard=samples_per_shard,
    )


def jpeg_cost(blobs: list[bytes], repeats: int = 5) -> tuple[float, float]:
    """Mean kB and mean single-thread OpenCV decode ms of JPEG bytes."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        start = time.perf_counter()
        for _ in range(repeats):
            for blob in blobs:
                cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
        seconds = (time.perf_counter() - start) / repeats
    finally:
        cv2.setNumThreads(threads)
    kilobytes = sum(map(len, blobs)) / len(blobs) / 1e3
    return kilobytes, 1e3 * seconds / len(blobs)


def square_jpeg(path: str, side: int) -> bytes:
    """A photo's centre square at ``side`` px (area resampling), JPEG q95."""
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f'cannot read an image from {path}')
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    img = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
    return encode_jpeg(img, JPEG_QUALITY)


def main(argv=None) -> list[list]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--side', type=int, nargs='+', default=[256, 512])
    parser.add_argument('--photos', nargs='*', default=[])
    parser.add_argument('--num', type=int, default=20, help='photo-like')
    args = parser.parse_args(argv)
    rows = []
    for side in args.side:
        rng = np.random.default_rng([0, side])
        blobs = [
            encode_jpeg(
                np.ascontiguousarray(photo_like_image(rng, side)[..., ::-1]),
                JPEG_QUALITY,
            )
            for _ in range(args.num)
        ]
        rows.append([side, f'photo-like ({args.num})', *jpeg_cost(blobs)])
        if args.photos:
            blobs = [square_jpeg(p, side) for p in args.photos]
            rows.append(
                [side, f'photos ({len(blobs)})', *jpeg_cost(blobs)]
            )
    table = [[s, what, f'{kb:.1f}', f'{ms:.2f}'] for s, what, kb, ms in rows]
    print(markdown_table(['side', 'images', 'kB / JPEG', 'decode ms'], table))
    return rows


if __name__ == '__main__':
    main()
