"""Read, check and write image-text shards in img2dataset's layout.

A shard is a plain tar file (``00000.tar``, ``00001.tar``...) whose members
come in groups sharing a key: ``KEY.jpg`` (JPEG bytes), ``KEY.txt`` (the
caption, UTF-8) and optionally ``KEY.json`` (metadata). This is what
img2dataset writes and what webdataset reads; the tar walking and the
grouping of members into samples are webdataset's
(:func:`webdataset.tariterators.tar_file_expander`,
:func:`~webdataset.tariterators.group_by_keys`,
:class:`webdataset.ShardWriter`).

One place decides whether a raw sample is usable
(:func:`decode_sample`): the streaming dataset
(:class:`~mixreorg_mmseg.datasets.WebDatasetImageText`), the shard checker
(:func:`check_shard`, ``tools/dataset_converters/summarize_shards.py``) and
the writers agree on it.
"""

from __future__ import annotations

import json
import os
import os.path as osp
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import cv2
import mmcv
import numpy as np
from braceexpand import braceexpand
from webdataset import ShardWriter
from webdataset.tariterators import (
    group_by_keys,
    tar_file_expander,
    url_opener,
)

from .image_caption_dataset import clean_caption

#: Member extensions accepted as the image of a sample, in order of
#: preference (img2dataset writes ``jpg`` unless told otherwise).
IMAGE_EXTENSIONS = ('jpg', 'jpeg', 'png', 'webp')

#: Why a sample (or the rest of a shard) was skipped, in reporting order.
SKIP_REASONS = (
    'corrupt_image',
    'missing_image',
    'empty_caption',
    'missing_caption',
    'bad_shard',
    'pipeline',
)

_URL_SCHEME = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*:')


class SkipSample(Exception):
    """A raw sample cannot be used; ``reason`` is one of
    :data:`SKIP_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def is_url(path: str) -> bool:
    """Whether ``path`` names a remote or piped shard (``s3:``, ``pipe:``,
    ``https:``...) rather than a local file."""
    return bool(_URL_SCHEME.match(path)) and not osp.exists(path)


def expand_shards(patterns: str | Iterable[str], root: str = '') -> list[str]:
    """Brace-expand shard patterns (``cc12m/{00000..01242}.tar``).

    Args:
        patterns: One pattern or several; each may hold several brace
            groups. Relative local paths are joined to ``root``.
        root: Folder of relative patterns (a config's ``data_root``).

    Returns:
        The shard paths or URLs, in pattern order, without duplicates.

    Raises:
        ValueError: if the patterns expand to nothing.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    shards = []
    for pattern in patterns:
        for shard in braceexpand(pattern):
            if root and not is_url(shard) and not osp.isabs(shard):
                shard = osp.join(root, shard)
            shards.append(shard)
    shards = list(dict.fromkeys(shards))
    if not shards:
        raise ValueError(f'shard patterns {patterns} match no shard')
    return shards


def describe_error(error: Exception) -> str:
    """``Type: message`` of a read error on one line (webdataset appends
    the stream and URL to ``args``; the message is the first)."""
    message = error.args[0] if error.args else ''
    return ' '.join(f'{type(error).__name__}: {message}'.split())


def iter_raw_samples(
    shard: str, on_error: Callable[[Exception], None]
) -> Iterator[dict]:
    """Yield the samples of one shard as webdataset groups them.

    Each sample is ``{'__key__': str, '__url__': shard, EXT: bytes...}``.
    A shard that cannot be opened or is cut short (truncated download,
    disk full) stops the iteration after the last complete member;
    ``on_error(exception)`` is called once for it, and nothing is raised.
    """

    def handler(error: Exception) -> bool:
        on_error(error)
        return False  # the rest of this shard is lost: stop reading it

    streams = url_opener([dict(url=shard)], handler=handler)
    files = tar_file_expander(streams, handler=handler, eof_value=None)
    yield from group_by_keys(files, handler=handler)


def decode_sample(raw: dict, decode_image: bool = True) -> dict:
    """Turn a raw shard sample into the start of an MMSeg data info.

    Args:
        raw: As yielded by :func:`iter_raw_samples`.
        decode_image: Decode the image (else only check it is present).

    Returns:
        ``dict(img, img_shape, ori_shape, img_path, caption, shard, key)``:
        ``img`` is an (H, W, 3) uint8 BGR array as ``LoadImageFromFile``
        gives (omitted when ``decode_image`` is false), ``img_path`` is
        ``SHARD/KEY.EXT`` (a member path, for logs and visualisation),
        ``caption`` is cleaned by :func:`clean_caption`.

    Raises:
        SkipSample: no image member, undecodable image, no ``txt`` member,
            or a caption that is empty after cleaning.
    """
    shard, key = raw.get('__url__', '?'), raw.get('__key__', '?')
    ext = next((e for e in IMAGE_EXTENSIONS if e in raw), None)
    if ext is None:
        raise SkipSample(
            'missing_image', f'{shard}: sample "{key}" has no image member'
        )
    if 'txt' not in raw:
        raise SkipSample(
            'missing_caption', f'{shard}: sample "{key}" has no .txt member'
        )
    caption = clean_caption(raw['txt'].decode('utf-8', errors='replace'))
    if not caption:
        raise SkipSample(
            'empty_caption', f'{shard}: sample "{key}" has an empty caption'
        )
    info = dict(
        img_path=f'{shard}/{key}.{ext}', caption=caption, shard=shard, key=key
    )
    if decode_image:
        try:
            img = mmcv.imfrombytes(raw[ext], flag='color')
        except Exception as error:  # any decoder error: the bytes are bad
            img = None
            detail = f' ({type(error).__name__}: {error})'
        else:
            detail = ''
        if img is None or img.ndim != 3 or img.size == 0:
            raise SkipSample(
                'corrupt_image',
                f'{shard}: image of sample "{key}" cannot be decoded{detail}',
            )
        info.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
    return info


@dataclass
class ShardReport:
    """What :func:`check_shard` found in one shard."""

    shard: str
    samples: int = 0
    #: Usable samples (image decodes, caption non-empty).
    good: int = 0
    skipped: dict = field(
        default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0)
    )
    #: Why reading stopped early (``None`` when the tar read to its end).
    error: str | None = None

    @property
    def ok(self) -> bool:
        """No bad sample and no read error."""
        return self.error is None and self.good == self.samples


def check_shard(shard: str, decode_images: bool = True) -> ShardReport:
    """Read a whole shard and classify every sample with
    :func:`decode_sample`; never raises for bad data."""
    report = ShardReport(shard)

    def on_error(error: Exception) -> None:
        report.error = describe_error(error)
        report.skipped['bad_shard'] += 1

    for raw in iter_raw_samples(shard, on_error):
        report.samples += 1
        try:
            decode_sample(raw, decode_image=decode_images)
        except SkipSample as skip:
            report.skipped[skip.reason] += 1
        else:
            report.good += 1
    return report


def encode_jpeg(img: np.ndarray, quality: int = 95) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 BGR array (as mmcv/OpenCV hold
    images)."""
    ok, buffer = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f'cannot JPEG-encode an array of shape {img.shape}')
    return buffer.tobytes()


def write_shards(
    samples: Iterable[dict],
    out_dir: str,
    samples_per_shard: int = 1000,
    prefix: str = '',
) -> list[str]:
    """Write samples as img2dataset-style shards
    ``OUT_DIR/PREFIX00000.tar``, ``PREFIX00001.tar``...

    Args:
        samples: Dicts with ``key`` (str, unique, no ``.`` or ``/``),
            ``jpg`` (JPEG bytes), ``txt`` (the caption) and optionally
            ``json`` (a JSON-serialisable dict).
        out_dir: Created if missing.
        samples_per_shard: Samples per tar; the last one may hold fewer.
        prefix: Prefix of the shard file names.

    Returns:
        The paths of the shards written, in order.

    Raises:
        ValueError / TypeError: a sample lacks a field, has a field of the
            wrong type, or repeats a key (naming the key).

    The files are byte-identical for identical samples (member times are
    fixed to 0), so a seeded generator writes reproducible shards.
    """
    if samples_per_shard < 1:
        raise ValueError(
            f'samples_per_shard must be positive, got {samples_per_shard}'
        )
    os.makedirs(out_dir, exist_ok=True)
    pattern = osp.join(out_dir, prefix.replace('%', '%%') + '%05d.tar')
    seen = set()
    written = []
    # ShardWriter opens the next tar once `maxcount` samples are in one;
    # `post` is called with each finished file's name
    with ShardWriter(
        pattern,
        maxcount=samples_per_shard,
        verbose=0,
        mtime=0.0,
        post=written.append,
    ) as writer:
        for sample in samples:
            writer.write(_check_sample(sample, seen))
    return written


def _check_sample(sample: dict, seen: set) -> dict:
    """The webdataset record of one :func:`write_shards` sample."""
    key = sample.get('key')
    if not isinstance(key, str) or not key or re.search(r'[./\s]', key):
        raise ValueError(
            f'sample key must be a non-empty str without ".", "/" or '
            f'spaces, got {key!r}'
        )
    if key in seen:
        raise ValueError(f'sample key "{key}" is written twice')
    seen.add(key)
    if not isinstance(sample.get('jpg'), bytes | bytearray):
        raise TypeError(f'sample "{key}": "jpg" must be JPEG bytes')
    if not isinstance(sample.get('txt'), str):
        raise TypeError(f'sample "{key}": "txt" must be a str caption')
    record = {'__key__': key, 'jpg': bytes(sample['jpg'])}
    record['txt'] = sample['txt'].encode('utf-8')
    if sample.get('json') is not None:
        if not isinstance(sample['json'], dict):
            raise TypeError(f'sample "{key}": "json" must be a dict')
        record['json'] = json.dumps(
            sample['json'], sort_keys=True, ensure_ascii=False
        ).encode('utf-8')
    return record
