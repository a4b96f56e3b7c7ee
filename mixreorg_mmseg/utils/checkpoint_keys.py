"""Does a checkpoint's state dict fit a model? Strict key matching, in short.

MMEngine's ``load_from`` and MMSeg's ``init_model`` load non-strictly: a
checkpoint of another architecture fills the keys it shares with the model
and leaves the rest at their random initialisation, with one printed
warning. For evaluation that is never what a user wants, so the evaluation
tools match the keys first (:func:`match_state_dict`) and refuse a
mismatch with :class:`CheckpointMismatchError`, which names the file and
the config and lists the missing, unexpected and reshaped keys in short:
counts, grouped by prefix, and the first few names.

One mismatch is expected and not an error: the MixReorg mixer
(``mixer.*``) exists only for training, so a MixReorg checkpoint evaluated
with a GroupViT (zero-shot) config carries weights the model does not
have. Those keys (:data:`TRAINING_ONLY_PREFIXES`) are dropped, and one log
line says so.

This module must not import ``mmseg`` (see :mod:`mixreorg_mmseg.utils`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

#: State-dict prefixes of modules used only in training: a checkpoint may
#: hold them for a model that has none (the MixReorg mixer, Sec. 3 of the
#: paper, is not part of the test-time network, which is GroupViT's).
TRAINING_ONLY_PREFIXES = ('mixer.',)

#: Names listed per kind of mismatch before "..."
KEYS_SHOWN = 4

#: Prefix groups listed per kind of mismatch.
GROUPS_SHOWN = 4


class CheckpointMismatchError(ValueError):
    """A checkpoint's keys or shapes do not match the model's."""


def strip_wrapper_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Remove the ``module.`` prefix (DataParallel / DDP) from every key
    that has it, as MMEngine's ``revise_keys`` default does."""
    return {
        key[len('module.') :] if key.startswith('module.') else key: value
        for key, value in state_dict.items()
    }


def prefix_groups(keys: Iterable[str], depth: int) -> list[tuple]:
    """``[(prefix, count), ...]`` of ``keys`` grouped by their first
    ``depth`` dotted parts (never the last, the tensor's own name),
    largest group first (ties in key order)."""
    counts = Counter(
        '.'.join(key.split('.')[: max(1, min(depth, key.count('.')))])
        for key in keys
    )
    return counts.most_common()


def summarize_keys(keys: list[str]) -> str:
    """``'61: backbone.layers.1.* (49), backbone.stem.* (12); first:
    backbone.stem.0.weight, ...'``: the finest grouping (up to 3 dotted
    parts) that needs at most :data:`GROUPS_SHOWN` groups."""
    for depth in (3, 2, 1):
        groups = prefix_groups(keys, depth)
        if len(groups) <= GROUPS_SHOWN:
            break
    shown = ', '.join(
        f'{prefix}.* ({count})' for prefix, count in groups[:GROUPS_SHOWN]
    )
    if len(groups) > GROUPS_SHOWN:
        shown += f', {len(groups) - GROUPS_SHOWN} more groups'
    first = ', '.join(keys[:KEYS_SHOWN]) + (
        ', ...' if len(keys) > KEYS_SHOWN else ''
    )
    return f'{len(keys)}: {shown}; first: {first}'


def _shape(value: Any) -> tuple | None:
    shape = getattr(value, 'shape', None)
    return tuple(shape) if shape is not None else None


def match_state_dict(
    model_state: Mapping[str, Any],
    state_dict: Mapping[str, Any],
    source: str,
    config: str | None = None,
    strict: bool = True,
    drop_training_only: bool = True,
    logger: logging.Logger | None = None,
) -> dict[str, Any]:
    """Check a checkpoint's state dict against the model's, key by key.

    Args:
        model_state: the model's ``state_dict()`` (or any key -> tensor
            mapping with its keys and shapes).
        state_dict: the checkpoint's (``module.`` prefixes are removed).
        source: the checkpoint file, for the messages.
        config: the config file the model was built from, for the
            messages.
        strict: raise on a mismatch; when False, log it as a warning and
            return what matches.
        drop_training_only: drop keys under :data:`TRAINING_ONLY_PREFIXES`
            the model does not have (one INFO line). False where they must
            match too (resuming the training state).
        logger: where the lines go (default: this module's logger).

    Returns:
        The state dict without the dropped training-only keys (and, when
        not strict, without keys the model lacks or with another shape).

    Raises:
        CheckpointMismatchError: ``strict`` and some key is missing,
            unexpected, or of another shape; the message names ``source``
            and ``config`` and summarizes each kind.
    """
    logger = logger or logging.getLogger(__name__)
    state_dict = strip_wrapper_prefix(state_dict)
    if drop_training_only:
        dropped = [
            key
            for key in state_dict
            if key.startswith(TRAINING_ONLY_PREFIXES)
            and key not in model_state
        ]
        if dropped:
            gone = set(dropped)
            state_dict = {k: v for k, v in state_dict.items() if k not in gone}
            prefixes = [
                p + '*'
                for p in TRAINING_ONLY_PREFIXES
                if any(k.startswith(p) for k in dropped)
            ]
            logger.info(
                f'{source}: dropped {len(dropped)} training-only keys '
                f'({", ".join(prefixes)}): this model does not have them '
                '(they serve training only)'
            )
    missing = [key for key in model_state if key not in state_dict]
    unexpected = [key for key in state_dict if key not in model_state]
    reshaped = [
        f'{key} {list(_shape(state_dict[key]))} vs {list(_shape(value))}'
        for key, value in model_state.items()
        if key in state_dict
        and _shape(value) is not None
        and _shape(state_dict[key]) is not None
        and _shape(value) != _shape(state_dict[key])
    ]
    if not (missing or unexpected or reshaped):
        return dict(state_dict)
    parts = []
    if missing:
        parts.append(f'missing in the checkpoint {summarize_keys(missing)}')
    if unexpected:
        parts.append(
            f'unexpected (not in the model) {summarize_keys(unexpected)}'
        )
    if reshaped:
        first = '; '.join(reshaped[:KEYS_SHOWN])
        more = ', ...' if len(reshaped) > KEYS_SHOWN else ''
        parts.append(
            f'of another shape (checkpoint vs model) {len(reshaped)}: '
            f'{first}{more}'
        )
    built = f' built from {config}' if config else ''
    message = (
        f'checkpoint {source} does not match the model{built}: '
        + ' | '.join(parts)
    )
    if strict:
        raise CheckpointMismatchError(
            message + ' | (is it a checkpoint of this config? Loading '
            'non-strictly (--non-strict in the tools) fills the matching '
            'keys and leaves the rest at their initialisation)'
        )
    logger.warning(
        message + ' | loading non-strictly: the matching keys are loaded, '
        'the rest keep their initialisation'
    )
    bad = set(unexpected) | {r.split(' ', 1)[0] for r in reshaped}
    return {k: v for k, v in state_dict.items() if k not in bad}
