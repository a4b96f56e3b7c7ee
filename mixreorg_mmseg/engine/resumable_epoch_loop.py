"""MMEngine's epoch loop, resumable in the middle of an epoch.

MMEngine's ``EpochBasedTrainLoop`` resumed from an iteration checkpoint
taken in the middle of an epoch runs that epoch again from its first
batch (the epoch then holds more steps than it should), and the batch
index its hooks receive, which the progress display and the end-of-epoch
tests read, starts from 0. This loop starts the epoch after the batches
already trained:

- a dataset with ``skip_batches`` (the streamed
  :class:`~mixreorg_mmseg.datasets.WebDatasetImageText`) skips them while
  reading, without running its pipeline on them;
- any other dataloader has them drawn and dropped (the sampler's order is
  a function of seed and epoch, so the same batches are dropped);

and numbers the remaining batches from where the epoch stopped, so the
display reads ``[2][ 4/12]`` for the epoch's fourth batch.
"""

from __future__ import annotations

import itertools

from mmengine.runner import EpochBasedTrainLoop
from mmseg.registry import LOOPS


@LOOPS.register_module()
class ResumableEpochBasedTrainLoop(EpochBasedTrainLoop):
    """``EpochBasedTrainLoop`` that resumes mid-epoch where it stopped.

    Same arguments as MMEngine's ``EpochBasedTrainLoop``.
    """

    def batches_done_in_epoch(self) -> int:
        """Batches of the current epoch trained before this process
        started (non-zero only in the first epoch after a resume from a
        checkpoint taken inside an epoch)."""
        return max(0, self._iter - self._epoch * len(self.dataloader))

    def run_epoch(self) -> None:
        """One epoch, from its first untrained batch."""
        done = self.batches_done_in_epoch()
        dataset = self.dataloader.dataset
        self.runner.call_hook('before_train_epoch')
        self.runner.model.train()
        # after the hooks: the dataset's set_epoch clears a skip
        if done and hasattr(dataset, 'skip_batches'):
            dataset.skip_batches(done)
        batches = iter(self.dataloader)
        if done and not hasattr(dataset, 'skip_batches'):
            self.runner.logger.info(
                f'resuming epoch {self._epoch + 1} after its first {done} '
                f'of {len(self.dataloader)} batches (drawn and dropped)'
            )
            batches = itertools.islice(batches, done, None)
        for idx, data_batch in enumerate(batches, start=done):
            self.run_iter(idx, data_batch)
        self.runner.call_hook('after_train_epoch')
        self._epoch += 1
