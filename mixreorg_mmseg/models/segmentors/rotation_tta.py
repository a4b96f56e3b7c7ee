"""Test-time augmentation with quarter-turned views.

MMSeg's ``SegTTAModel`` averages the softmaxed class maps of a config's
``tta_pipeline`` views; each view's map comes back from the segmentor's
``postprocess_result`` un-flipped and at the original size, but a view made
by :class:`~mixreorg_mmseg.datasets.transforms.Rotate90` comes back in its
turned frame. This model turns every such map back (``rot90`` in the view's
metainfo) and then merges as ``SegTTAModel`` does; views without ``rot90``
pass unchanged, so it also merges plain resize-and-flip pipelines.
"""

from __future__ import annotations

import torch
from mmengine.structures import PixelData
from mmseg.models.segmentors import SegTTAModel
from mmseg.registry import MODELS
from mmseg.utils import SampleList


@MODELS.register_module()
class RotationSegTTAModel(SegTTAModel):
    """``SegTTAModel`` that undoes the quarter turns of ``Rotate90`` views."""

    def merge_preds(self, data_samples_list: list[SampleList]) -> SampleList:
        """Turn each view's ``seg_logits`` (``C, H', W'``) back to the
        image's frame (``C, H, W``), then average as ``SegTTAModel``."""
        for data_samples in data_samples_list:
            for sample in data_samples:
                k = int(sample.metainfo.get('rot90', 0)) % 4
                if k == 0:
                    continue
                logits = torch.rot90(sample.seg_logits.data, -k, dims=(1, 2))
                # a new PixelData: a turned non-square map changes shape
                sample.seg_logits = PixelData(data=logits)
                height, width = logits.shape[1:]
                sample.set_metainfo({'ori_shape': (height, width), 'rot90': 0})
        return super().merge_preds(data_samples_list)
