"""Quarter-turn rotation of a test view, for test-time augmentation.

Where objects lie at any angle (the synthetic world draws every shape at a
random rotation, textures and background gradients at random angles), an
image turned by a multiple of 90 degrees is as likely as the image itself,
so it is one more view to vote with, like the flip. MMSeg's
``postprocess_result`` undoes only resizing and flipping; the view's class
map comes back in the turned frame and
:class:`~mixreorg_mmseg.models.segmentors.RotationSegTTAModel` turns it
back before the views are averaged.
"""

from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class Rotate90(BaseTransform):
    """Turn the image counterclockwise by ``k`` quarter turns.

    Reads ``img`` (H, W, C) and writes it turned (W, H, C for odd ``k``),
    with ``img_shape`` and ``ori_shape`` turned alike: ``postprocess_result``
    then resizes the view's class map to the turned original, so the turn
    back is exact for any aspect ratio. ``rot90`` (``k % 4``) records the
    turn; pack it with the inputs
    (``PackSegInputs(meta_keys=(..., 'rot90'))``).

    Place it after ``Resize`` and before ``RandomFlip`` (the segmentor
    undoes the flip first, then the TTA model the turn) and before
    ``LoadAnnotations``: the ground truth stays in the image's own frame,
    as it stays at the image's own size after ``Resize``.

    Args:
        k: Number of counterclockwise quarter turns (any integer; only
            ``k % 4`` matters).
    """

    def __init__(self, k: int = 1) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f'Rotate90: k must be an integer, got {k!r}')
        self.k = int(k) % 4

    def transform(self, results: dict) -> dict:
        if results.get('gt_seg_map') is not None:
            raise ValueError(
                'Rotate90 must come before LoadAnnotations: the ground truth '
                f'of {results.get("img_path", "this sample")} stays in the '
                "image's own frame"
            )
        if 'img' not in results:
            raise KeyError("Rotate90 needs 'img': load the image first")
        results['img'] = np.ascontiguousarray(
            np.rot90(results['img'], self.k, axes=(0, 1))
        )
        results['img_shape'] = results['img'].shape[:2]
        if self.k % 2 and 'ori_shape' in results:
            h, w = results['ori_shape'][:2]
            results['ori_shape'] = (w, h)
        results['rot90'] = self.k
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(k={self.k})'
