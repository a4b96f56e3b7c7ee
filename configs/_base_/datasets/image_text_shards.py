# CC12M as img2dataset writes it (webdataset shards data/cc12m/00000.tar...
# holding KEY.jpg, KEY.txt, KEY.json), streamed by WebDatasetImageText with
# the same DeiT-style augmentation as cc12m_image_captions.py: the pipeline
# is taken from there; its loading step is dropped by the dataset, which
# decodes the images from the tars itself.
_base_ = ['./cc12m_image_captions.py']

train_dataloader = dict(
    # an IterableDataset: no sampler; the dataset splits the shards over
    # ranks and workers, and ShardedDataHook gives it the epoch
    sampler=None,
    dataset=dict(
        _delete_=True,
        type='WebDatasetImageText',
        data_root='data/cc12m',
        shards='{00000..01242}.tar',
        # samples per epoch: the pairs the shards hold (summarize_shards.py
        # counts them)
        epoch_size=10_000_000,
        shuffle_buffer=1000,
        max_skip_ratio=0.1,
        # shards that run out within an epoch are re-read, with a warning;
        # False makes that an error
        allow_reread=True,
        pipeline={{_base_.train_pipeline}},
    ),
)
custom_hooks = [dict(type='ShardedDataHook', interval=50)]
