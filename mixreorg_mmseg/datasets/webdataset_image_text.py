"""Image-caption pairs streamed from webdataset tar shards (iterable).

The at-scale form of the text-supervised training data (CC3M, CC12M,
YFCC as img2dataset writes them: ``00000.tar`` holding ``KEY.jpg``,
``KEY.txt``, ``KEY.json``). The map-style
:class:`~mixreorg_mmseg.datasets.ImageCaptionDataset` is the small-data
form; both feed the same MMSeg pipeline and give the model
``dict(inputs=[C, H, W uint8], data_samples=[SegDataSample])`` with the
cleaned caption in ``metainfo['caption']``.

**Loading.** The dataset decodes the image itself (``mmcv.imfrombytes``,
as ``LoadImageFromFile`` does): each sample entering the pipeline already
holds ``img`` (H, W, 3 uint8 BGR), ``img_shape``, ``ori_shape``,
``img_path`` (``SHARD/KEY.jpg``) and ``caption``. A pipeline that starts
with ``LoadImageFromFile`` or ``LoadImageOrSkip`` (the map-style pipeline)
has that first step dropped, with a log line, so one pipeline serves both
forms. With ``decode_images=False`` the sample holds the image member's
bytes instead (``img_bytes``, no ``img``): a pipeline starting with
``LoadJpegBytes`` passes them on undecoded, for a data preprocessor that
decodes on the accelerator (``GPUDecodeSegDataPreProcessor``).

**Epochs, ranks, workers.** One epoch is ``epoch_size`` usable samples in
all (``epoch_size // world_size`` per rank, ``len(dataset)``). Each epoch
the shard list of every source is permuted from ``(seed, epoch)``, the
same on all ranks, then split by rank (``order[rank::world_size]``) and
within a rank by dataloader worker (``[worker::num_workers]``), so no two
readers share a shard. A source with fewer shards than ``world_size *
num_workers`` readers is split by sample instead: every reader walks all
its shards and keeps every ``world_size * num_workers``-th sample (no
duplicates either, but each reader reads the whole tar). A reader whose
shards run out before its share of the epoch starts over on them: only
then are samples read twice in an epoch, i.e. when ``epoch_size`` exceeds
the usable samples the shards hold. The first time a sample read a second
time is used in an epoch, one warning says so with the numbers (once per
epoch and rank, whatever the number of workers); with
``allow_reread=False`` it is an error instead.

**Resume.** The shard order depends only on the seed and the epoch, each
sample's augmentation only on its place in the stream (the pipeline runs
under generators seeded from seed, epoch, reader and position), and
:meth:`skip_batches` makes the next pass over the epoch drop the batches
already trained (they are decoded, not augmented).
:class:`~mixreorg_mmseg.engine.ShardedDataHook` wires both to MMEngine's
loops (the DataLoader of an ``IterableDataset`` has no sampler to call
``set_epoch`` on). Not bit-exact: samples the pipeline dropped before the
checkpoint shift the skip by as many samples.

**Bad data.** A corrupt image, a missing image or caption, an empty
caption, a shard that cannot be opened or is truncated are skipped and
counted, in samples, per reason and per shard in shared memory, so the
counts of all dataloader workers are visible in the main process
(:meth:`skip_counts`; the hook logs them). A shard that cannot be read to
its end-of-archive marker (:func:`~.shard_io.iter_raw_samples` detects a
cut anywhere, member boundaries included) counts the samples it did not
deliver as ``bad_shard``: exactly when its sample count is known (its
``_stats.json``, see :func:`~.shard_io.known_sample_count`; a shard that
reads cleanly but short of that count is truncated too), else estimated
from the median size of the complete shards of its source read so far
(at least 1), and the log says it is an estimate. Once
``min_samples_for_check`` samples have been read or lost, a skipped
fraction above ``max_skip_ratio`` raises :class:`ShardDataError` (a
``RuntimeError`` whose message, also from a dataloader worker, is the
reason without the worker's internal traceback) naming the shard with the
most skips.
"""

from __future__ import annotations

import itertools
import logging
import math
import multiprocessing as mp
import os.path as osp
from collections.abc import Iterator, Sequence

import numpy as np
from mmengine.dataset.base_dataset import Compose
from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmseg.registry import DATASETS
from torch.utils.data import IterableDataset, get_worker_info

from ..utils.seeding import seeded_rng
from .shard_io import (
    SKIP_REASONS,
    SkipSample,
    TruncatedShardError,
    decode_sample,
    describe_error,
    expand_shards,
    is_url,
    iter_raw_samples,
    known_sample_count,
    stats_path,
)

#: Pipeline steps that read ``img_path`` from disk; the dataset decodes
#: instead, so a leading one is dropped.
LOADING_STEPS = ('LoadImageFromFile', 'LoadImageOrSkip')

#: Columns of the shared counters: usable samples, then each skip reason.
COUNT_COLUMNS = ('good', *SKIP_REASONS)

#: Sample-level skip warnings each reader logs before going quiet (the
#: counts keep running and the hook logs them).
MAX_SKIP_WARNINGS = 5


class ShardDataError(RuntimeError):
    """The shards cannot feed the run as configured: too many samples
    skipped, no usable sample, or re-reading refused. The message says
    why, naming the worst shard.

    Raised in a DataLoader worker, the error reaches the main process
    rebuilt by PyTorch from the worker's whole formatted traceback; the
    message is cut back to its own text and where it was raised, as the
    condition is expected and the traceback internal.
    """

    def __init__(self, message: str) -> None:
        marker = f'{type(self).__name__}: '
        if message.startswith('Caught ') and marker in message:
            first = message.split('\n', 1)[0].rstrip('.')
            where = first.split(' in ', 1)[-1]  # DataLoader worker process N
            message = f'{message.rsplit(marker, 1)[1].strip()} (in {where})'
        super().__init__(message)


@DATASETS.register_module()
class WebDatasetImageText(IterableDataset):
    """Image-caption pairs from img2dataset-style webdataset shards.

    Args:
        epoch_size (int): Usable samples per epoch over all ranks.
        shards (str | list[str], optional): Brace pattern(s) of one
            source, e.g. ``'cc12m/{00000..01242}.tar'``; relative local
            paths are under ``data_root``. Give this or ``sources``.
        sources (list[dict], optional): Several sources mixed with
            weights: ``[dict(shards=PATTERN(S), weight=2.0), ...]``. Each
            epoch's samples come from the sources in proportion to their
            weights (exact counts, randomly interleaved).
        pipeline (list[dict]): MMSeg/mmcv/mmpretrain transforms, ending in
            ``PackSegInputs(meta_keys=(..., 'caption'))``.
        data_root (str): Folder of relative shard patterns.
        seed (int): Seed of the shard order and the interleaving.
        shuffle_shards (bool): Permute the shards each epoch.
        shuffle_buffer (int): Shuffle samples within a reader through a
            buffer of this many (0: shard order).
        max_skip_ratio (float): Largest tolerated fraction of skipped
            samples on a rank. Defaults to 0.1.
        min_samples_for_check (int): Samples read before the ratio is
            checked (a few bad ones early are no verdict).
        batch_size (int, optional): The dataloader's batch size; readers
            then get whole batches, so ``len(dataloader)`` is exact.
            :class:`~mixreorg_mmseg.engine.ShardedDataHook` sets it.
        allow_reread (bool): When the shards hold fewer usable samples
            than an epoch needs, re-read them (samples repeat within the
            epoch; one warning per epoch says so). False: raise
            :class:`ShardDataError` instead. Defaults to True.
        decode_images (bool): Decode each image in the reader (``img``,
            H x W x 3 uint8 BGR). False: pass its bytes on undecoded as
            ``img_bytes``; a corrupt image is then found (and counted) by
            the pipeline or the data preprocessor. Defaults to True.

    Raises:
        ValueError / FileNotFoundError: bad arguments, or local shards
            that do not exist (naming them).
        ShardDataError: while reading, when the data cannot feed the run
            (``max_skip_ratio`` exceeded, no usable sample, re-reading
            with ``allow_reread=False``).
    """

    def __init__(
        self,
        epoch_size: int,
        shards: str | Sequence[str] | None = None,
        sources: Sequence[dict] | None = None,
        pipeline: Sequence[dict] = (),
        data_root: str = '',
        seed: int = 0,
        shuffle_shards: bool = True,
        shuffle_buffer: int = 0,
        max_skip_ratio: float = 0.1,
        min_samples_for_check: int = 1000,
        batch_size: int | None = None,
        allow_reread: bool = True,
        decode_images: bool = True,
    ) -> None:
        super().__init__()
        if (shards is None) == (sources is None):
            raise ValueError('give exactly one of `shards` and `sources`')
        if sources is None:
            sources = [dict(shards=shards, weight=1.0)]
        if int(epoch_size) < 1:
            raise ValueError(f'epoch_size must be positive, got {epoch_size}')
        if not 0.0 <= max_skip_ratio <= 1.0:
            raise ValueError(
                f'max_skip_ratio must lie in [0, 1], got {max_skip_ratio}'
            )
        self.epoch_size = int(epoch_size)
        self.data_root = data_root
        self.seed = int(seed)
        self.shuffle_shards = shuffle_shards
        self.shuffle_buffer = int(shuffle_buffer)
        self.max_skip_ratio = max_skip_ratio
        self.min_samples_for_check = int(min_samples_for_check)
        self.batch_size = batch_size
        self.allow_reread = bool(allow_reread)
        self.decode_images = bool(decode_images)
        #: All shards of all sources; counters are indexed by position.
        self.shards: list[str] = []
        #: Per source, the indices of its shards in :attr:`shards`.
        self.source_shards: list[list[int]] = []
        weights = []
        for i, source in enumerate(sources):
            if 'shards' not in source:
                raise ValueError(f'sources[{i}] has no "shards" key')
            unknown = set(source) - {'shards', 'weight'}
            if unknown:
                raise ValueError(f'sources[{i}]: unknown keys {unknown}')
            weight = float(source.get('weight', 1.0))
            if not weight > 0:
                raise ValueError(f'sources[{i}]: weight must be > 0')
            paths = expand_shards(source['shards'], data_root)
            self._check_local(paths, source['shards'])
            start = len(self.shards)
            self.shards.extend(paths)
            self.source_shards.append(list(range(start, len(self.shards))))
            weights.append(weight)
        self.weights = np.asarray(weights) / sum(weights)
        self.pipeline = Compose(self._drop_loading_step(list(pipeline)))
        # shared memory: written by the dataloader workers, read by the
        # main process (passed to the workers when they are started)
        self._epoch = mp.Value('q', 0)
        self._skip = mp.Value('q', 0)
        self._counts = mp.Array('q', len(self.shards) * len(COUNT_COLUMNS))
        #: per shard: of the ``bad_shard`` samples, how many are estimated
        self._estimated = mp.Array('q', len(self.shards))
        #: per shard: samples found when it was last read to its end (-1:
        #: never), the basis of the estimates
        self._complete = mp.Array('q', [-1] * len(self.shards))
        #: the last epoch whose re-reading was reported (-1: none)
        self._reread_epoch = mp.Value('q', -1)
        #: per process: sample counts from the shards' statistics files
        self._known_counts: dict[int, int | None] = {}
        #: per process: (usable samples, shards) of a reader's first pass
        #: over each source's shards, for the re-read message
        self._pass_sizes: dict[int, tuple[int, int]] = {}

    @staticmethod
    def _check_local(paths: list[str], pattern) -> None:
        missing = [p for p in paths if not is_url(p) and not osp.isfile(p)]
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} of the {len(paths)} shards of {pattern!r} '
                f'do not exist, e.g. {missing[0]}'
            )

    @staticmethod
    def _drop_loading_step(pipeline: list) -> list:
        if pipeline and isinstance(pipeline[0], dict):
            name = str(pipeline[0].get('type', '')).split('.')[-1]
            if name in LOADING_STEPS:
                print_log(
                    f'WebDatasetImageText decodes images itself: the '
                    f'pipeline\'s first step "{name}" is not used',
                    logger='current',
                    level=logging.INFO,
                )
                return pipeline[1:]
        return pipeline

    @property
    def metainfo(self) -> dict:
        """No classes: captions supervise (MMEngine's loops read this)."""
        return {}

    def __len__(self) -> int:
        """Samples per epoch on this rank."""
        return self.epoch_size // get_dist_info()[1]

    # -- epochs and resume -------------------------------------------------

    @property
    def epoch(self) -> int:
        return self._epoch.value

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass read epoch ``epoch``'s shard order; a new
        epoch number also clears :meth:`skip_batches`."""
        if epoch != self._epoch.value:
            self._epoch.value = int(epoch)
            self._skip.value = 0

    def skip_batches(self, num_batches: int) -> None:
        """Make the passes over the current epoch start after its first
        ``num_batches`` batches of this rank (after a mid-epoch resume)."""
        self._skip.value = int(num_batches)

    # -- counters ----------------------------------------------------------

    def _count_view(self) -> np.ndarray:
        """(num_shards, len(COUNT_COLUMNS)) int64 view of the counters."""
        return np.frombuffer(self._counts.get_obj(), dtype=np.int64).reshape(
            len(self.shards), len(COUNT_COLUMNS)
        )

    def _count(self, shard: int, column: str, num: int = 1) -> None:
        cell = shard * len(COUNT_COLUMNS) + COUNT_COLUMNS.index(column)
        with self._counts.get_lock():
            self._counts[cell] += num

    def skip_counts(self) -> dict:
        """Counts of this rank since the start, all workers included.

        Returns:
            ``dict(good=int, skipped=int, estimated=int, reasons={reason:
            int}, shards={shard: {reason: int}})``, all in samples;
            ``estimated`` is the part of ``reasons['bad_shard']`` that is
            an estimate (shards of unknown size); ``shards`` lists only
            the shards with a skip, worst first.
        """
        counts = self._count_view().copy()
        with self._estimated.get_lock():
            estimated = int(sum(self._estimated))
        bad = counts[:, 1:]
        shards = {}
        for i in np.argsort(-bad.sum(1), kind='stable'):
            if not bad[i].any():
                break
            shards[self.shards[i]] = {
                r: int(n)
                for r, n in zip(SKIP_REASONS, bad[i], strict=True)
                if n
            }
        return dict(
            good=int(counts[:, 0].sum()),
            skipped=int(bad.sum()),
            estimated=estimated,
            reasons={
                r: int(n)
                for r, n in zip(SKIP_REASONS, bad.sum(0), strict=True)
            },
            shards=shards,
        )

    def _check_skip_ratio(self) -> None:
        counts = self.skip_counts()
        seen = counts['good'] + counts['skipped']
        if (
            seen >= self.min_samples_for_check
            and counts['skipped'] > self.max_skip_ratio * seen
        ):
            worst, reasons = next(iter(counts['shards'].items()))
            estimated = (
                f' ({counts["estimated"]} of the bad_shard samples estimated)'
                if counts['estimated']
                else ''
            )
            raise ShardDataError(
                f'{counts["skipped"]} of {seen} samples skipped '
                f'({counts["skipped"] / seen:.1%} > max_skip_ratio='
                f'{self.max_skip_ratio}); worst shard: {worst} ({reasons}); '
                f'all reasons: {counts["reasons"]}{estimated}'
            )

    # -- shards read short -------------------------------------------------

    def _known_count(self, shard: int) -> int | None:
        if shard not in self._known_counts:
            self._known_counts[shard] = known_sample_count(self.shards[shard])
        return self._known_counts[shard]

    def _estimate_size(self, shard: int) -> int | None:
        """Median sample count of the complete shards of ``shard``'s
        source read so far (else of all sources); None: none yet."""
        with self._complete.get_lock():
            sizes = np.frombuffer(self._complete.get_obj(), np.int64).copy()
        source = next(s for s in self.source_shards if shard in s)
        for pool in (sizes[source], sizes):
            pool = pool[pool >= 0]
            if len(pool):
                return int(np.median(pool))
        return None

    def _end_of_shard(
        self,
        shard: int,
        read: int,
        error: Exception | None,
        start: int,
        stride: int,
        slot: int,
    ) -> None:
        """Count what ``shard`` failed to deliver after ``read`` raw
        samples (``error``: why reading stopped, None: it read to its
        end). Its samples have the positions ``start, start + 1, ...`` of
        this reader's walk; the reader counts the lost ones it would have
        kept (every ``stride``-th), so readers that split a shard by
        sample count each lost sample once.
        """
        known = self._known_count(shard)
        if error is None:
            if known is None or read >= known:
                self._complete[shard] = read
                return
            error = TruncatedShardError(
                f'{self.shards[shard]}: holds {read} samples, '
                f'{stats_path(self.shards[shard])} says {known}'
            )
        if getattr(error, 'members_complete', False):
            lost, how = 0, 'no sample lost'
        elif known is not None:
            lost = max(known - read, 0)
            how = f'{lost} samples lost ({known} by its statistics file)'
        else:
            typical = self._estimate_size(shard)
            if typical is None:
                lost = 1
                how = (
                    'about 1 sample lost (an estimate: no sample count of '
                    'this shard is known and no shard has been read to its '
                    'end yet)'
                )
            else:
                lost = max(typical - read, 1)
                how = (
                    f'about {lost} samples lost (an estimate: its sample '
                    f'count is unknown; complete shards hold {typical})'
                )
        position = start + read  # of the first lost sample
        first = position + (slot - position) % stride
        mine = len(range(first, position + lost, stride))
        if mine:
            self._count(shard, 'bad_shard', mine)
            if known is None:
                with self._estimated.get_lock():
                    self._estimated[shard] += mine
        if slot % stride == 0:  # one of the readers sharing it logs
            print_log(
                f'shard {self.shards[shard]} stops after {read} samples '
                f'({describe_error(error)}): {how}',
                logger='current',
                level=logging.WARNING,
            )

    # -- reading -----------------------------------------------------------

    def _reader_share(
        self, rank: int, world: int, worker: int, workers: int
    ) -> tuple[int, int]:
        """(samples this reader yields this epoch, samples it skips)."""
        per_rank = self.epoch_size // world
        size = self.batch_size or 1
        num_batches = math.ceil(per_rank / size)
        # the DataLoader takes batch i from worker i % workers
        share = len(range(worker, num_batches, workers)) * size
        if num_batches and (num_batches - 1) % workers == worker:
            share -= num_batches * size - per_rank
        skip = len(range(worker, self._skip.value, workers)) * size
        return share, min(skip, share)

    def _raw_samples(
        self, shard: int, start: int, stride: int, slot: int
    ) -> Iterator[dict]:
        """The raw samples of ``shard`` (its first at position ``start``
        of the reader's walk); what it fails to deliver is counted by
        :meth:`_end_of_shard` as soon as the reading knows it."""
        failed = []

        def on_error(error: Exception, num_samples: int) -> None:
            failed.append(error)
            self._end_of_shard(shard, num_samples, error, start, stride, slot)
            self._check_skip_ratio()

        read = 0
        for raw in iter_raw_samples(self.shards[shard], on_error):
            read += 1
            yield raw
        if not failed:
            self._end_of_shard(shard, read, None, start, stride, slot)

    def _source_stream(
        self, source: int, slot: int, world: int, workers: int
    ) -> Iterator[dict]:
        """Usable decoded samples of one source for reader ``slot``
        (``rank * workers + worker``); endless (starts over when done).
        Each carries ``shard_idx`` and ``reread`` (from a second or later
        pass over the shards)."""
        rank, worker = divmod(slot, workers)
        warnings = 0
        for repeat in itertools.count():
            order = list(self.source_shards[source])
            if self.shuffle_shards:
                rng = np.random.default_rng(
                    [self.seed, self.epoch, source, repeat]
                )
                order = [order[i] for i in rng.permutation(len(order))]
            num_readers = world * workers
            if len(order) >= num_readers:
                mine, stride = order[rank::world][worker::workers], 1
            else:  # fewer shards than readers: split by sample
                mine, stride = order, num_readers
            good = 0
            position = 0
            for shard in mine:
                for raw in self._raw_samples(shard, position, stride, slot):
                    position += 1
                    if (position - 1) % stride != slot % stride:
                        continue
                    try:
                        info = decode_sample(raw, self.decode_images)
                    except SkipSample as skip:
                        self._count(shard, skip.reason)
                        if warnings < MAX_SKIP_WARNINGS:
                            warnings += 1
                            print_log(
                                f'skipping a sample: {skip}',
                                logger='current',
                                level=logging.WARNING,
                            )
                        self._check_skip_ratio()
                        continue
                    self._count(shard, 'good')
                    info['shard_idx'] = shard
                    info['reread'] = repeat > 0
                    good += 1
                    yield info
            if not good:
                names = [self.shards[i] for i in mine[:3]]
                raise ShardDataError(
                    f'no usable sample in the {len(mine)} shards read by '
                    f'rank {rank} worker {worker}, e.g. {names} '
                    f'(skips: {self.skip_counts()["reasons"]})'
                )
            if not repeat:
                self._pass_sizes[source] = (good, len(mine))

    def _mixed_stream(
        self, share: int, slot: int, world: int, workers: int
    ) -> Iterator[dict]:
        """The sources interleaved: exactly their weighted shares of the
        first ``share`` samples, then weighted draws."""
        rng = np.random.default_rng([self.seed, self.epoch, slot, 1 << 20])
        exact = self.weights * share
        counts = np.floor(exact).astype(int)
        order = np.argsort(-(exact - counts), kind='stable')
        counts[order[: share - counts.sum()]] += 1
        labels = np.repeat(np.arange(len(counts)), counts)
        rng.shuffle(labels)
        streams = [
            self._source_stream(s, slot, world, workers)
            for s in range(len(counts))
        ]
        for label in labels:
            yield next(streams[label])
        while True:  # replacements for samples the pipeline drops
            yield next(streams[rng.choice(len(counts), p=self.weights)])

    def _shuffled(self, stream: Iterator[dict], slot: int) -> Iterator[dict]:
        if self.shuffle_buffer <= 1:
            yield from stream
            return
        rng = np.random.default_rng([self.seed, self.epoch, slot, 1 << 21])
        buffer = []
        for info in stream:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(info)
                continue
            i = rng.integers(len(buffer))
            if info['reread'] and buffer[i]['reread']:
                # a re-read sample comes in: hand out the samples of the
                # first pass first, so that the read-ahead of the buffer
                # alone never makes samples repeat
                fresh = [j for j, b in enumerate(buffer) if not b['reread']]
                if fresh:
                    i = fresh[rng.integers(len(fresh))]
            buffer[i], info = info, buffer[i]
            yield info

    def _report_reread(
        self, rank: int, worker: int, world: int, workers: int, share: int
    ) -> None:
        """Warn once per epoch (all workers of this rank together) that a
        sample is used twice in it; raise when ``allow_reread`` is off."""
        counts = self.skip_counts()
        passes = ', '.join(
            f'{good} usable samples from its {num} shard(s) of source {src}'
            for src, (good, num) in sorted(self._pass_sizes.items())
        )
        seen = counts['good'] + counts['skipped']
        message = (
            f'epoch {self.epoch}: rank {rank} worker {worker} needs {share} '
            f'samples of the epoch (epoch_size={self.epoch_size} over '
            f'{world} rank(s) x {workers} worker(s)), but one pass gave '
            f'{passes or "fewer"}; skipped so far: {counts["skipped"]} of '
            f'{seen} samples {counts["reasons"]}'
        )
        if not self.allow_reread:
            raise ShardDataError(
                f'{message}. allow_reread=False: lower epoch_size, add '
                'shards or repair the bad ones (or allow the re-reading)'
            )
        with self._reread_epoch.get_lock():
            first = self._reread_epoch.value != self.epoch
            self._reread_epoch.value = self.epoch
        if first:
            print_log(
                f'{message}; re-reading the shards, so samples repeat '
                'within this epoch (allow_reread=False makes this an error)',
                logger='current',
                level=logging.WARNING,
            )

    def __iter__(self) -> Iterator[dict]:
        """This reader's share of the current epoch, through the
        pipeline."""
        rank, world = get_dist_info()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        # the DataLoader asks worker 0 first: after skipping the first k
        # batches, worker w reads what worker (w + k) % workers read in
        # the full pass, so the batches keep their order
        worker = (worker + self._skip.value) % workers
        slot = rank * workers + worker
        share, skip = self._reader_share(rank, world, worker, workers)
        if share <= 0:
            return
        stream = self._shuffled(
            self._mixed_stream(share, slot, world, workers), slot
        )
        for _ in range(skip):  # already trained: not used again
            next(stream)
        produced = position = skip
        reported = False
        while produced < share:
            data = next(stream)
            shard = data.pop('shard_idx')
            if data.pop('reread') and not reported:
                self._report_reread(rank, worker, world, workers, share)
                reported = True
            position += 1
            # the augmentation is a function of the sample's place in the
            # stream, so a resumed epoch augments as the first pass did
            with seeded_rng(self.seed, self.epoch, slot, position):
                result = self.pipeline(data)
            if result is None:
                self._count(shard, 'pipeline')
                self._check_skip_ratio()
                continue
            produced += 1
            yield result
        self._check_skip_ratio()
