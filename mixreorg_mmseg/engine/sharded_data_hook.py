"""Connect a streamed shard dataset to MMEngine's training loops.

MMEngine turns epochs through the sampler (``DistSamplerSeedHook`` and
the iteration loop's restart call ``sampler.set_epoch``), but the
DataLoader of an ``IterableDataset`` has no sampler of ours, and the
skip counters of a streamed dataset live in the dataloader workers. This
hook gives :class:`~mixreorg_mmseg.datasets.WebDatasetImageText` its
epoch, its batch size and its resume point, and writes its skip counts to
the training log.
"""

from __future__ import annotations

import torch
from mmengine.dist import all_reduce
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from mmseg.registry import HOOKS

from ..datasets.shard_io import SKIP_REASONS
from ..datasets.webdataset_image_text import WebDatasetImageText


@HOOKS.register_module()
class ShardedDataHook(Hook):
    """Epochs, resume and skip counts of a streamed shard dataset.

    - before training: the dataset learns the dataloader's batch size (so
      ``len(dataloader)`` is exact) and ``dataloader.sampler.set_epoch``
      is pointed at ``dataset.set_epoch``, which MMEngine's iteration loop
      calls each time the data restarts;
    - before each epoch: ``dataset.set_epoch(runner.epoch)``; in the first
      epoch after a mid-epoch resume of an epoch-based loop, the batches
      already trained are skipped (the iteration-based loop advances the
      data itself);
    - every ``interval`` iterations (when something changed) and after
      each epoch: one log line with the samples read and skipped, summed
      over ranks, by reason (samples lost to truncated or unreadable
      shards as ``bad_shard``, with how many of them are estimated), and
      the worst shards of this rank.

    Args:
        interval (int): Iterations between log lines. Defaults to 50.
        num_shards_shown (int): Worst shards named per line.
    """

    priority = 'LOW'  # after DistSamplerSeedHook: our set_epoch wins

    def __init__(self, interval: int = 50, num_shards_shown: int = 3):
        self.interval = interval
        self.num_shards_shown = num_shards_shown
        self._logged = None
        self._at = -1
        self._resumed = False

    @staticmethod
    def _dataset(runner) -> WebDatasetImageText:
        dataset = runner.train_loop.dataloader.dataset
        if not isinstance(dataset, WebDatasetImageText):
            raise TypeError(
                'ShardedDataHook needs train_dataloader.dataset to be a '
                f'WebDatasetImageText, got {type(dataset).__name__}'
            )
        return dataset

    def before_train(self, runner) -> None:
        loader = runner.train_loop.dataloader
        dataset = self._dataset(runner)
        if dataset.batch_size is None and loader.batch_size:
            dataset.batch_size = loader.batch_size
        # an IterableDataset's DataLoader holds a placeholder sampler;
        # MMEngine's loops call set_epoch on whatever sampler is there
        loader.sampler.set_epoch = dataset.set_epoch
        self._resumed = runner.iter > 0

    def before_train_epoch(self, runner) -> None:
        dataset = self._dataset(runner)
        dataset.set_epoch(runner.epoch)
        loop = runner.train_loop
        if self._resumed and isinstance(loop, EpochBasedTrainLoop):
            done = runner.iter - runner.epoch * len(loop.dataloader)
            if done > 0:
                dataset.skip_batches(done)
                runner.logger.info(
                    f'resuming epoch {runner.epoch} after its first {done} '
                    'batches'
                )
        self._resumed = False

    def after_train_iter(
        self, runner, batch_idx, data_batch=None, outputs=None
    ) -> None:
        if self.every_n_train_iters(runner, self.interval):
            self._log(runner, force=False)

    def after_train_epoch(self, runner) -> None:
        self._log(runner, force=True)

    def _log(self, runner, force: bool) -> None:
        counts = self._dataset(runner).skip_counts()
        totals = torch.tensor(
            [
                counts['good'],
                *(counts['reasons'][r] for r in SKIP_REASONS),
                counts['estimated'],
            ],
            dtype=torch.int64,
        )
        all_reduce(totals)  # every rank calls this at the same iteration
        totals = totals.tolist()
        if totals == self._logged and (not force or self._at == runner.iter):
            return
        self._logged, self._at = totals, runner.iter
        *totals, estimated = totals
        good, bad = totals[0], sum(totals[1:])
        reasons = ', '.join(
            f'{r} {n}'
            + (
                f' (about {estimated} estimated)'
                if r == 'bad_shard' and estimated
                else ''
            )
            for r, n in zip(SKIP_REASONS, totals[1:], strict=True)
            if n
        )
        line = f'shard data: {good} samples read, {bad} skipped'
        if bad:
            seen = good + bad
            worst = list(counts['shards'].items())[: self.num_shards_shown]
            line += f' ({bad / seen:.2%}: {reasons})'
            if worst:
                line += '; worst shards: ' + ', '.join(
                    f'{shard} {sum(r.values())}' for shard, r in worst
                )
        runner.logger.info(line)
