# Runtime shared by every config of this project.
#
# `custom_imports` loads the plugin, so that MMSeg's stock tools
# (`mim train mmseg ...`, mmseg's tools/train.py) run our configs too: the
# import registers our modules, makes MMSeg importable on mmcv-lite and
# installs the safe checkpoint I/O (docs/install.md).
custom_imports = dict(imports=['mixreorg_mmseg'], allow_failed_imports=False)
default_scope = 'mmseg'

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # nccl on GPUs; tools/train.py switches to gloo on CPU-only machines
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer'
)
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=1000, max_keep_ckpts=2
    ),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # random numbers seeded from (seed, iteration) before every training
    # step, so a resumed run draws what the uninterrupted one drew
    iteration_seed=dict(type='IterationSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
)
# tools/test.py --tta: MMSeg's merger of the views of a config's
# tta_pipeline (SegTTAModel: it averages their softmaxed class maps), which
# also turns the class maps of Rotate90 views back; on views without a
# turn it merges exactly as SegTTAModel
tta_model = dict(type='RotationSegTTAModel')
