"""Seed the random generators from the iteration before each training step.

See :mod:`mixreorg_mmseg.utils.seeding` for why the random state is a
function of the position rather than saved and restored: with this hook a
run resumed from an iteration checkpoint draws, from its first step on,
the numbers the uninterrupted run drew (the MixReorg mixing plans, drop
path, any random op in the model), whatever validation or dataloader
start-up happened in between.
"""

from __future__ import annotations

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ..utils.seeding import derive_seed, seed_all


@HOOKS.register_module()
class IterationSeedHook(Hook):
    """Before training iteration ``i``: python, numpy and torch (CPU and
    CUDA) seeded from ``(runner.seed, i)``.

    ``runner.seed`` is the config's ``randomness.seed`` (or the one MMEngine
    drew and stored in the checkpoint, which ``resume`` restores). Every
    rank gets the same seed, as MMEngine's ``set_randomness`` gives them by
    default.
    """

    priority = 'VERY_HIGH'  # before any hook that might draw

    def before_train_iter(
        self, runner, batch_idx: int, data_batch=None
    ) -> None:
        seed_all(derive_seed(runner.seed, runner.iter))
