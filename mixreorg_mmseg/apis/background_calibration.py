"""Choose the zero-shot head's background threshold on validation data.

``ZeroShotGroupHead`` calls a pixel background when its segment's best
score is under ``bg_thresh``. With ``bg_score='cosine'`` that score is a
cosine between a segment and a class prompt, and where the cosines of a
trained model sit depends on the model and its data: a threshold that
suits one run can leave another's objects under it (every pixel
background) or its background over it. These functions evaluate one
checkpoint on a config's validation split at several thresholds (a full
MMEngine test loop each, so the number is the one ``tools/test.py``
prints at that threshold) and pick the best; the held-out test data take
no part in the choice. ``tools/analysis_tools/calibrate_background.py``
runs them and writes a config with the chosen value.
"""

from __future__ import annotations

import copy
import math
import os
import os.path as osp
from collections.abc import Sequence

from mmengine.config import Config

from ..models.decode_heads import zero_shot_head

#: the thresholds tried by default, 0.2 to 0.95 by 0.05: the cosine
#: scores of the synthetic world's models lie in this range, and the best
#: value of each run of the study lies inside it (docs/benchmarks.md)
DEFAULT_THRESHOLDS = tuple(round(0.2 + 0.05 * i, 2) for i in range(16))


def validation_as_test(cfg: Config) -> Config:
    """A copy of ``cfg`` whose test loop runs its validation split
    (``val_dataloader`` and ``val_evaluator``).

    Raises:
        KeyError: the config has no ``val_dataloader`` or
            ``val_evaluator`` (named with the config's file).
    """
    for key in ('val_dataloader', 'val_evaluator'):
        if cfg.get(key) is None:
            raise KeyError(
                f'{getattr(cfg, "filename", "config")}: no {key}: the '
                'background threshold is chosen on the validation split, '
                'never on the test data'
            )
    cfg = copy.deepcopy(cfg)
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = cfg.val_evaluator
    return cfg


def sweep_background_threshold(
    runner, thresholds: Sequence[float], metric: str = 'mIoU'
) -> list[dict]:
    """Run ``runner``'s test loop once per threshold.

    Args:
        runner: an MMEngine Runner whose model has a ``ZeroShotGroupHead``
            with a background class (``bg_thresh`` set) and whose test loop
            runs the data to choose on (:func:`validation_as_test`).
        thresholds: values of ``bg_thresh`` in ``[0, 1]``.
        metric: the key of the evaluator's result to report.

    Returns:
        One ``dict(bg_thresh=t, score=...)`` per threshold, in order, with
        every metric the evaluator returned. The head's own threshold is
        restored afterwards.
    """
    if not thresholds:
        raise ValueError('no thresholds to try')
    bad = [t for t in thresholds if not 0.0 <= t <= 1.0]
    if bad:
        raise ValueError(f'background thresholds must be in [0, 1]: {bad}')
    head = zero_shot_head(runner.model)
    if not head.with_background:
        raise ValueError(
            'model.decode_head.bg_thresh is None: the head has no '
            'background class, so there is no threshold to choose'
        )
    original = head.bg_thresh
    rows = []
    try:
        for t in thresholds:
            head.bg_thresh = float(t)
            metrics = runner.test()
            if metric not in metrics:
                raise KeyError(
                    f'the evaluator returned {sorted(metrics)}, not {metric!r}'
                )
            rows.append(dict(bg_thresh=float(t), score=float(metrics[metric])))
    finally:
        head.bg_thresh = original
    return rows


def choose_background_threshold(rows: Sequence[dict], default: float) -> float:
    """The threshold of the best score in ``rows`` (from
    :func:`sweep_background_threshold`); among equal scores the one
    nearest ``default`` (the config's value), so a flat sweep keeps it."""
    scored = [r for r in rows if not math.isnan(r['score'])]
    if not scored:
        raise ValueError('no threshold gave a score')
    best = max(r['score'] for r in scored)
    return min(
        (r['bg_thresh'] for r in scored if r['score'] == best),
        key=lambda t: (abs(t - default), t),
    )


def write_threshold_config(config: str, bg_thresh: float, path: str) -> str:
    """Write a config that inherits ``config`` and sets
    ``model.decode_head.bg_thresh``; its ``_base_`` is relative to
    ``path``'s folder, as MMEngine resolves it (the folder is made when
    missing). Returns ``path``.

    Keep it out of the folder a Runner later gets as ``--work-dir``: the
    Runner dumps the config it ran there under the config's file name,
    which would replace this file."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = osp.relpath(osp.abspath(config), folder)
    text = (
        f'# {osp.basename(config)} with the background threshold chosen on\n'
        '# its validation split (tools/analysis_tools/'
        'calibrate_background.py)\n'
        f'_base_ = [{base!r}]\n'
        f'model = dict(decode_head=dict(bg_thresh={bg_thresh!r}))\n'
    )
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    return path


__all__ = [
    'DEFAULT_THRESHOLDS',
    'choose_background_threshold',
    'sweep_background_threshold',
    'validation_as_test',
    'write_threshold_config',
]
