"""Random numbers that depend on where training is, not on what ran before.

Resuming a run reproduces it exactly only if every random draw after the
resume point is the one the uninterrupted run made. Saving the generators'
states in a checkpoint does not give that: between the checkpoint and the
next step the uninterrupted run also validates, starts dataloader
iterators and augments in worker processes, all of which draw numbers a
resumed run does not draw, or draws elsewhere. So the random state is made
a function of the position instead:

- before each training iteration, python's ``random``, numpy's global
  generator and torch's generators are seeded from ``(seed, iteration)``
  (:class:`~mixreorg_mmseg.engine.IterationSeedHook`);
- each sample's data pipeline runs under generators seeded from its place
  in the data stream (:func:`seeded_rng`), in whichever process loads it,
  and leaves the process's own generators as they were.

A resumed run that knows its iteration and its data position (both in the
checkpoint) then draws exactly what the uninterrupted run drew.
"""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def derive_seed(*key: int) -> int:
    """A 32-bit seed from a tuple of non-negative integers (numpy's
    ``SeedSequence`` hash: nearby keys give unrelated seeds)."""
    return int(np.random.SeedSequence(list(key)).generate_state(1)[0])


def seed_all(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch's
    generators (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def seeded_rng(*key: int):
    """Run the block with python's, numpy's and torch's CPU generators
    seeded from ``key``, then put their previous states back (so a data
    pipeline run in the training process does not move the model's
    random numbers)."""
    seed = derive_seed(*key)
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed)
        torch.default_generator.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)
