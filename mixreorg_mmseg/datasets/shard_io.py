"""Read, check and write image-text shards in img2dataset's layout.

A shard is a plain tar file (``00000.tar``, ``00001.tar``...) whose members
come in groups sharing a key: ``KEY.jpg`` (JPEG bytes), ``KEY.txt`` (the
caption, UTF-8) and optionally ``KEY.json`` (metadata). This is what
img2dataset writes and what webdataset reads. Opening a shard (local,
``pipe:``, ``s3:``...), grouping its members into samples and writing are
webdataset's (:func:`webdataset.gopen.gopen`,
:func:`~webdataset.tariterators.group_by_keys`,
:class:`webdataset.ShardWriter`); walking the tar is ours
(:func:`iter_raw_samples`), because webdataset's walk (Python's
``tarfile``) takes a tar cut at a member boundary or inside a member
header for a complete one: only the end-of-archive marker, two zero
blocks, tells a complete tar from a cut one.

**Sample counts.** Next to ``00000.tar`` img2dataset writes
``00000_stats.json``, whose ``successes`` is the number of samples in the
tar; :func:`write_shards` writes the same file, and
``tools/dataset_converters/summarize_shards.py --write-stats`` writes it
for shards that read completely. :func:`known_sample_count` reads it, so
that a reader knows how many samples a truncated shard lost.

One place decides whether a raw sample is usable
(:func:`decode_sample`): the streaming dataset
(:class:`~mixreorg_mmseg.datasets.WebDatasetImageText`), the shard checker
(:func:`check_shard`, ``tools/dataset_converters/summarize_shards.py``) and
the writers agree on it.
"""

from __future__ import annotations

import json
import logging
import os
import os.path as osp
import re
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import cv2
import mmcv
import numpy as np
from braceexpand import braceexpand
from mmengine.logging import print_log
from webdataset import ShardWriter
from webdataset.gopen import gopen
from webdataset.tariterators import base_plus_ext, group_by_keys

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

#: Suffix of the per-shard statistics file (img2dataset's name):
#: ``00000.tar`` -> ``00000_stats.json``.
STATS_SUFFIX = '_stats.json'

_URL_SCHEME = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*:')


class SkipSample(Exception):
    """A raw sample cannot be used; ``reason`` is one of
    :data:`SKIP_REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class TruncatedShardError(Exception):
    """A shard's tar ends before its end-of-archive marker, or holds fewer
    samples than its statistics file says.

    Attributes:
        members_complete (bool): Every member was read; only (part of) the
            end-of-archive marker is missing.
    """

    def __init__(self, message: str, members_complete: bool = False):
        super().__init__(message)
        self.members_complete = members_complete


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


class _EndRecordingTarInfo(tarfile.TarInfo):
    """``TarInfo`` that leaves on its ``TarFile`` (``header_error``) why
    the last header read failed: ``tarfile`` ends the member iteration on
    a zero block (the end-of-archive marker) and, silently, on a missing,
    cut or corrupt header too."""

    @classmethod
    def fromtarfile(cls, archive):
        try:
            info = super().fromtarfile(archive)
        except tarfile.HeaderError as error:
            archive.header_error = error
            raise
        archive.header_error = None
        return info


def _tar_files(stream, shard: str, reading: dict) -> Iterator[dict]:
    """The regular files of an opened tar, as webdataset's
    ``tar_file_iterator`` yields them (``fname``, ``data``, ``__url__``;
    webdataset's ``__*__`` meta members skipped). While a member's data is
    read, ``reading['member']`` holds its name (None between members).

    Raises:
        TruncatedShardError: a member is cut short, or the tar ends
            without its end-of-archive marker (at a member boundary,
            inside a header, or inside the marker itself).
        tarfile.ReadError: unreadable data (as ``tarfile`` raises it).
    """
    archive = tarfile.open(
        fileobj=stream, mode='r|*', tarinfo=_EndRecordingTarInfo
    )
    for info in archive:
        if info.isreg() and not info.name.startswith('__'):
            reading['member'] = info.name
            data = archive.extractfile(info).read()
            if len(data) != info.size:
                raise TruncatedShardError(
                    f'{shard}: member {info.name} is cut short '
                    f'({len(data)} of {info.size} bytes)'
                )
            reading['member'] = None
            yield dict(fname=info.name, data=data, __url__=shard)
        archive.members = []  # streaming: keep no history
    end = getattr(archive, 'header_error', None)
    where = f'{shard}: the tar ends at byte {archive.offset}'
    if isinstance(end, tarfile.EOFHeaderError):
        # the first zero block of the marker was read; the second must be
        # there too (POSIX), else the file was cut inside the marker
        if archive.fileobj.read(tarfile.BLOCKSIZE) != bytes(tarfile.BLOCKSIZE):
            raise TruncatedShardError(
                f'{where} inside its end-of-archive marker (no member is '
                'missing)',
                members_complete=True,
            )
    elif isinstance(end, tarfile.InvalidHeaderError):
        raise TruncatedShardError(f'{where}: corrupt member header ({end})')
    else:  # no header at all, or part of one: the file was cut there
        raise TruncatedShardError(
            f'{where} without its end-of-archive marker (cut at or inside '
            'a member header)'
        )


def iter_raw_samples(
    shard: str, on_error: Callable[[Exception, int], None]
) -> Iterator[dict]:
    """Yield the samples of one shard as webdataset groups them.

    Each sample is ``{'__key__': str, '__url__': shard, EXT: bytes...}``.
    A shard that cannot be opened, is cut short anywhere (truncated
    download, disk full; see :func:`_tar_files`) or is corrupt stops the
    iteration after the last sample known to be complete: the sample the
    cut went through is not yielded, nor the one before a cut at or
    inside a member header (its last member may be what is missing).
    ``on_error(exception, num_samples)`` is then called once, with the
    number of samples the shard delivers in all, before the last of them
    is yielded (a reader that stops after it still learns of the error)
    and outside any ``except`` block; nothing is raised.
    """
    errors: list[Exception] = []
    reading = dict(member=None)

    def stop(error: Exception) -> bool:
        errors.append(error)
        return False  # the rest of this shard is lost: stop reading it

    def files(stream) -> Iterator[dict]:
        try:
            yield from _tar_files(stream, shard, reading)
        except Exception as error:  # any read error: the rest is lost
            errors.append(error)

    stream = None
    held = None  # each sample waits until the next one is complete
    complete = []  # after a read error: the samples known to be whole
    delivered = 0
    try:
        stream = gopen(shard)
        for sample in group_by_keys(files(stream), handler=stop):
            if errors:
                # the read failed inside this last group: the one held
                # is whole, but is yielded only after on_error (a reader
                # that stops at it must still learn of the error)
                if held is not None:
                    complete.append(held)
                held = sample
                break
            if held is not None:
                delivered += 1
                yield held
            held = sample
    except Exception as error:  # cannot open
        errors.append(error)
    finally:
        if stream is not None:
            stream.close()
    if held is not None:
        cut = reading['member'] and base_plus_ext(reading['member'])[0]
        whole = not errors or getattr(errors[0], 'members_complete', False)
        if whole or (cut and cut != held['__key__']):
            complete.append(held)
    if errors:
        on_error(errors[0], delivered + len(complete))
    yield from complete


def stats_path(shard: str) -> str:
    """The statistics file of a shard: ``DIR/00000.tar`` ->
    ``DIR/00000_stats.json`` (img2dataset's naming)."""
    base = shard
    for ext in ('.tar.gz', '.tgz', '.tar'):
        if base.endswith(ext):
            base = base[: -len(ext)]
            break
    return base + STATS_SUFFIX


def known_sample_count(shard: str) -> int | None:
    """Samples a local shard holds by its statistics file (``successes``
    of :func:`stats_path`); ``None`` when there is none, for remote shards,
    and for an unreadable statistics file (with a warning naming it)."""
    path = stats_path(shard)
    if is_url(shard) or not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as file:
            count = json.load(file)['successes']
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f'"successes" is {count!r}, not a count')
    except (OSError, ValueError, KeyError, TypeError) as error:
        print_log(
            f'{path}: cannot read the sample count of {shard} '
            f'({type(error).__name__}: {error}); counting without it',
            logger='current',
            level=logging.WARNING,
        )
        return None
    return count


def decode_sample(raw: dict, decode_image: bool = True) -> dict:
    """Turn a raw shard sample into the start of an MMSeg data info.

    Args:
        raw: As yielded by :func:`iter_raw_samples`.
        decode_image: Decode the image (else only check it is present).

    Returns:
        ``dict(img, img_shape, ori_shape, img_path, caption, shard, key)``:
        ``img`` is an (H, W, 3) uint8 BGR array as ``LoadImageFromFile``
        gives; when ``decode_image`` is false ``img``, ``img_shape`` and
        ``ori_shape`` are replaced by ``img_bytes`` (the image member's
        bytes, undecoded), ``img_path`` is
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
    else:
        info['img_bytes'] = raw[ext]
    return info


@dataclass
class ShardReport:
    """What :func:`check_shard` found in one shard."""

    shard: str
    #: Samples read (up to the first read error).
    samples: int = 0
    #: Usable samples (image decodes, caption non-empty).
    good: int = 0
    #: Skipped samples by reason; ``bad_shard`` counts the samples lost
    #: to a read error when the shard's sample count is known.
    skipped: dict = field(
        default_factory=lambda: dict.fromkeys(SKIP_REASONS, 0)
    )
    #: Samples the statistics file says the shard holds (``None``: none).
    expected: int | None = None
    #: Why reading stopped early (``None`` when the tar read to its end).
    error: str | None = None

    @property
    def lost(self) -> int | None:
        """Samples the shard should hold but did not deliver (``None``
        when its count is unknown and reading failed)."""
        if self.expected is not None:
            return max(self.expected - self.samples, 0)
        return None if self.error else 0

    @property
    def ok(self) -> bool:
        """No bad sample and no read error."""
        return self.error is None and self.good == self.samples


def check_shard(shard: str, decode_images: bool = True) -> ShardReport:
    """Read a whole shard and classify every sample with
    :func:`decode_sample`; never raises for bad data. A shard that reads
    to its end but holds fewer samples than :func:`known_sample_count`
    says is reported as truncated."""
    report = ShardReport(shard, expected=known_sample_count(shard))

    def on_error(error: Exception, num_samples: int) -> None:
        report.error = describe_error(error)

    for raw in iter_raw_samples(shard, on_error):
        report.samples += 1
        try:
            decode_sample(raw, decode_image=decode_images)
        except SkipSample as skip:
            report.skipped[skip.reason] += 1
        else:
            report.good += 1
    if report.error is None and report.lost:
        report.error = describe_error(
            TruncatedShardError(
                f'{shard}: holds {report.samples} samples, '
                f'{stats_path(shard)} says {report.expected}'
            )
        )
    report.skipped['bad_shard'] = report.lost or 0
    return report


def write_stats(shard: str, samples: int) -> str:
    """Write the statistics file of a complete shard (``successes``: its
    sample count, as img2dataset writes it); returns its path."""
    path = stats_path(shard)
    with open(path, 'w', encoding='utf-8') as file:
        json.dump(dict(successes=int(samples)), file)
        file.write('\n')
    return path


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
        The paths of the shards written, in order. Next to each,
        :func:`write_stats` records its sample count
        (``PREFIX00000_stats.json``), so a reader can count what a
        truncated copy lost.

    Raises:
        ValueError / TypeError: a sample lacks a field, has a field of the
            wrong type, or repeats a key (naming the key).

    The files are byte-identical for identical samples (member times are
    fixed to 0), so a seeded generator writes reproducible shards. The time
    is the integer 0: plain ustar headers, which ``tarfile`` reads faster
    than the pax header a float time adds to every member (webdataset's
    writer, hence img2dataset, writes ``time.time()``; both read alike).
    """
    if samples_per_shard < 1:
        raise ValueError(
            f'samples_per_shard must be positive, got {samples_per_shard}'
        )
    os.makedirs(out_dir, exist_ok=True)
    pattern = osp.join(out_dir, prefix.replace('%', '%%') + '%05d.tar')
    seen = set()
    written = []
    in_shard = [0]  # samples written to the open tar

    def finished(path: str) -> None:
        write_stats(path, in_shard[0])
        in_shard[0] = 0
        written.append(path)

    # ShardWriter opens the next tar once `maxcount` samples are in one;
    # `post` is called with each finished file's name, before the sample
    # that opens the next tar is written
    with ShardWriter(
        pattern,
        maxcount=samples_per_shard,
        verbose=0,
        mtime=0,
        post=finished,
    ) as writer:
        for sample in samples:
            writer.write(_check_sample(sample, seen))
            in_shard[0] += 1
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
