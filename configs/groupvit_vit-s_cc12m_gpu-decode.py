# configs/groupvit_vit-s_cc12m.py with the JPEGs decoded and augmented on
# the GPU (configs/_base_/datasets/cc12m_image_captions_gpu_decode.py): the
# dataloader workers only read the shards and tokenize, so fewer CPU cores
# keep a GPU fed (docs/benchmarks.md, "GPU").
#   python tools/train.py configs/groupvit_vit-s_cc12m_gpu-decode.py
_base_ = [
    '_base_/models/groupvit_vit-s.py',
    '_base_/datasets/cc12m_image_captions_gpu_decode.py',
    '_base_/default_runtime.py',
    '_base_/schedules/schedule_groupvit_30e.py',
]
model = dict(data_preprocessor={{_base_.gpu_decode_preprocessor}})
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=True, interval=1, max_keep_ckpts=3),
)
