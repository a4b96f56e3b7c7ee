# Installation check: a stock MMSeg SegFormer trained on the toy shapes
# folder through this plugin's registry, runtime and checkpoint I/O, with no
# text supervision involved (README's main job is
# configs/synthetic_world/mixreorg_tiny_synthetic-world-64x64.py).
_base_ = [
    '../_base_/models/segformer_mit-b0.py',
    '../_base_/datasets/toy_segmentation.py',
    '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_toy.py',
]
default_hooks = dict(checkpoint=dict(interval=100, save_best='mIoU'))
