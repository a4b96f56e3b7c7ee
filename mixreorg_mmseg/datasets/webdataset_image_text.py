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
forms.

**Epochs, ranks, workers.** One epoch is ``epoch_size`` usable samples in
all (``epoch_size // world_size`` per rank, ``len(dataset)``). Each epoch
the shard list of every source is permuted from ``(seed, epoch)``, the
same on all ranks, then split by rank (``order[rank::world_size]``) and
within a rank by dataloader worker (``[worker::num_workers]``), so no two
readers share a shard. A source with fewer shards than ``world_size *
num_workers`` readers is split by sample instead: every reader walks all
its shards and keeps every ``world_size * num_workers``-th sample (no
duplicates either, but each reader reads the whole tar). A reader whose
shards run out before its share of the epoch starts over on them (a
warning says so): only then are samples read twice in an epoch, i.e. when
``epoch_size`` exceeds what the shards hold.

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
caption, a shard that cannot be opened or is truncated (the rest of it)
are skipped and counted per reason and per shard in shared memory, so the
counts of all dataloader workers are visible in the main process
(:meth:`skip_counts`; the hook logs them). Once ``min_samples_for_check``
samples have been read, a skipped fraction above ``max_skip_ratio`` raises
``RuntimeError`` naming the shard with the most skips.
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
    decode_sample,
    describe_error,
    expand_shards,
    is_url,
    iter_raw_samples,
)

#: Pipeline steps that read ``img_path`` from disk; the dataset decodes
#: instead, so a leading one is dropped.
LOADING_STEPS = ('LoadImageFromFile', 'LoadImageOrSkip')

#: Columns of the shared counters: usable samples, then each skip reason.
COUNT_COLUMNS = ('good', *SKIP_REASONS)

#: Sample-level skip warnings each reader logs before going quiet (the
#: counts keep running and the hook logs them).
MAX_SKIP_WARNINGS = 5


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

    Raises:
        ValueError / FileNotFoundError: bad arguments, or local shards
            that do not exist (naming them).
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

    def _count(self, shard: int, column: str) -> None:
        cell = shard * len(COUNT_COLUMNS) + COUNT_COLUMNS.index(column)
        with self._counts.get_lock():
            self._counts[cell] += 1

    def skip_counts(self) -> dict:
        """Counts of this rank since the start, all workers included.

        Returns:
            ``dict(good=int, skipped=int, reasons={reason: int},
            shards={shard: {reason: int}})``; ``shards`` lists only the
            shards with a skip, worst first.
        """
        counts = self._count_view().copy()
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
            raise RuntimeError(
                f'{counts["skipped"]} of {seen} samples skipped '
                f'({counts["skipped"] / seen:.1%} > max_skip_ratio='
                f'{self.max_skip_ratio}); worst shard: {worst} ({reasons}); '
                f'all reasons: {counts["reasons"]}'
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

    def _source_stream(
        self, source: int, slot: int, world: int, workers: int
    ) -> Iterator[dict]:
        """Usable decoded samples of one source for reader ``slot``
        (``rank * workers + worker``); endless (starts over when done)."""
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

                def on_error(error, shard=shard):
                    self._count(shard, 'bad_shard')
                    print_log(
                        f'skipping the rest of shard {self.shards[shard]}: '
                        f'{describe_error(error)}',
                        logger='current',
                        level=logging.WARNING,
                    )
                    self._check_skip_ratio()

                for raw in iter_raw_samples(self.shards[shard], on_error):
                    position += 1
                    if (position - 1) % stride != slot % stride:
                        continue
                    try:
                        info = decode_sample(raw)
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
                    good += 1
                    yield info
            if not good:
                names = [self.shards[i] for i in mine[:3]]
                raise RuntimeError(
                    f'no usable sample in the {len(mine)} shards read by '
                    f'rank {rank} worker {worker}, e.g. {names} '
                    f'(skips: {self.skip_counts()["reasons"]})'
                )
            print_log(
                f'rank {rank} worker {worker}: the shards of source '
                f'{source} ran out in epoch {self.epoch}; reading them '
                'again (epoch_size exceeds the data)',
                logger='current',
                level=logging.WARNING,
            )

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
            buffer[i], info = info, buffer[i]
            yield info

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
        for _ in range(skip):
            next(stream)
        produced = position = skip
        while produced < share:
            data = next(stream)
            shard = data.pop('shard_idx')
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
