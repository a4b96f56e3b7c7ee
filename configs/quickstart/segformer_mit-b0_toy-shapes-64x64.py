# Installation check: a stock MMSeg SegFormer trained on the toy shapes
# folder through this plugin's registry, runtime and checkpoint I/O.
# Until the synthetic image-text world lands this is README's main job.
_base_ = [
    '../_base_/models/segformer_mit-b0.py',
    '../_base_/datasets/toy_segmentation.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_toy.py',
]
default_hooks = dict(checkpoint=dict(interval=100, save_best='mIoU'))
