"""Load a checkpoint into a model only if its keys match the model's.

Two ways in, one check (:func:`~mixreorg_mmseg.utils.checkpoint_keys.
match_state_dict`):

- :class:`StrictLoadHook`, for MMEngine's Runner: its ``load_from`` and
  ``resume`` call ``after_load_checkpoint`` with the loaded checkpoint
  before they put it into the model, non-strictly; the hook matches the
  keys there, drops the training-only ones the model lacks, and raises
  :class:`~mixreorg_mmseg.utils.checkpoint_keys.CheckpointMismatchError`
  on a mismatch. ``tools/test.py`` and ``tools/train.py --resume`` add it.
- :func:`load_model_checkpoint`, for a model built outside a Runner (the
  one-image zero-shot API, the demos).
"""

from __future__ import annotations

from typing import Any

from mmengine.hooks import Hook
from mmengine.logging import MMLogger
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner.checkpoint import CheckpointLoader, load_state_dict
from mmseg.registry import HOOKS
from torch import nn

from ..utils.checkpoint_keys import match_state_dict


def bare_model(model: nn.Module) -> nn.Module:
    """The model inside DDP / DataParallel wrappers and a TTA model, as
    MMEngine's ``load_state_dict`` unwraps it."""
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


def checkpoint_state_dict(checkpoint: Any, source: str) -> dict:
    """The weights of a loaded checkpoint (its ``state_dict``, or the file
    itself when it is a bare state dict)."""
    if not isinstance(checkpoint, dict):
        raise TypeError(
            f'{source}: a checkpoint holds a dict, this one a '
            f'{type(checkpoint).__name__}'
        )
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, dict):
        raise TypeError(f'{source}: its "state_dict" is not a dict')
    return state_dict


@HOOKS.register_module()
class StrictLoadHook(Hook):
    """Refuse a checkpoint whose keys do not match the Runner's model.

    Args:
        checkpoint (str): The file the Runner loads (``load_from``, or the
            one it resumes), named in the messages.
        config (str, optional): The config file, named in the messages.
        strict (bool): Raise on a mismatch (else: log it and load what
            matches).
        drop_training_only (bool): Drop training-only keys (the mixer's)
            that the model lacks, with one log line. False for resuming,
            where the optimizer state must fit the model exactly.
    """

    priority = 'VERY_HIGH'

    def __init__(
        self,
        checkpoint: str,
        config: str | None = None,
        strict: bool = True,
        drop_training_only: bool = True,
    ) -> None:
        self.checkpoint = checkpoint
        self.config = config
        self.strict = strict
        self.drop_training_only = drop_training_only

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state_dict = checkpoint_state_dict(checkpoint, self.checkpoint)
        matched = match_state_dict(
            bare_model(runner.model).state_dict(),
            state_dict,
            source=self.checkpoint,
            config=self.config,
            strict=self.strict,
            drop_training_only=self.drop_training_only,
            logger=runner.logger,
        )
        # MMEngine loads what is left in the dict it passed us
        state_dict.clear()
        state_dict.update(matched)


def load_model_checkpoint(
    model: nn.Module,
    filename: str,
    config: str | None = None,
    strict: bool = True,
    map_location: Any = 'cpu',
) -> dict:
    """Load ``filename`` into ``model`` after matching the keys.

    The file is read by MMEngine's ``CheckpointLoader`` (the safe,
    weights-only I/O of :mod:`mixreorg_mmseg.utils.safe_checkpoint`);
    training-only keys the model lacks are dropped with one log line.

    Returns:
        The checkpoint (its ``meta`` holds e.g. ``dataset_meta``).

    Raises:
        CheckpointMismatchError: ``strict`` and the keys or shapes do not
            match (the message names the file and ``config``).
    """
    logger = MMLogger.get_current_instance()
    checkpoint = CheckpointLoader.load_checkpoint(
        filename, map_location=map_location
    )
    state_dict = match_state_dict(
        bare_model(model).state_dict(),
        checkpoint_state_dict(checkpoint, filename),
        source=filename,
        config=config,
        strict=strict,
        logger=logger,
    )
    load_state_dict(
        bare_model(model), state_dict, strict=strict, logger=logger
    )
    return checkpoint
