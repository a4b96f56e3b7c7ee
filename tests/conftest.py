"""Shared fixtures: a tiny stock MMSeg model config and the toy folder."""

import os
import os.path as osp
import subprocess
import sys

import pytest
import torch

import mixreorg_mmseg  # noqa: F401  (compat + registration first)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
QUICKSTART_CONFIG = osp.join(
    REPO_ROOT, 'configs/quickstart/segformer_mit-b0_toy-shapes-64x64.py'
)
GROUPVIT_TOY_CONFIG = osp.join(
    REPO_ROOT, 'configs/quickstart/groupvit_tiny_toy-captions-64x64.py'
)
MIXREORG_TOY_CONFIG = osp.join(
    REPO_ROOT, 'configs/quickstart/mixreorg_tiny_toy-captions-64x64.py'
)


EPS32 = torch.finfo(torch.float32).eps  # 2**-23 = 1.19e-7


def float32_atol(terms, magnitude):
    """Absolute tolerance between two float32 computations of one value
    that round differently (another summation order, BLAS blocking or
    kernel). A float32 sum with ``terms`` rounded additions of values of
    size ``magnitude`` is within ``terms * EPS32 * magnitude`` of the exact
    sum, in any order (the worst-case bound; ``terms`` counts every
    reduction along the computation, first-order error analysis), so two
    such computations differ by at most twice that."""
    return 2 * terms * EPS32 * float(torch.as_tensor(magnitude).detach())


@pytest.fixture(scope='session', autouse=True)
def mmseg_scope():
    """MMSeg's registries as default scope, as the Runner sets them."""
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)


@pytest.fixture(scope='session')
def toy_root(tmp_path_factory):
    """A toy segmentation folder (24 train, 4 val images of 32x32)."""
    from mixreorg_mmseg.datasets import write_toy_segmentation

    root = str(tmp_path_factory.mktemp('toy_segmentation'))
    write_toy_segmentation(root, {'train': 24, 'val': 4}, size=32, seed=0)
    return root


@pytest.fixture(scope='session')
def toy_captions_root(tmp_path_factory):
    """Toy shapes with captions (24 images of 32x32, train split)."""
    from mixreorg_mmseg.datasets import write_toy_image_captions

    root = str(tmp_path_factory.mktemp('toy_image_captions'))
    write_toy_image_captions(root, 24, size=32, seed=0)
    return root


def tiny_train_cfg(toy_root, work_dir, max_iters=4, interval=2):
    """The quickstart config shrunk to a few iterations on 32x32 images."""
    from mmengine.config import Config

    cfg = Config.fromfile(QUICKSTART_CONFIG)
    cfg.work_dir = str(work_dir)
    cfg.model.data_preprocessor.size = (32, 32)
    cfg.model.decode_head.channels = 16
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = toy_root
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_dataloader.batch_size = 4
    cfg.train_cfg.max_iters = max_iters
    cfg.train_cfg.val_interval = interval
    cfg.default_hooks.checkpoint.interval = interval
    cfg.default_hooks.checkpoint.max_keep_ckpts = -1
    cfg.default_hooks.logger.interval = 1
    cfg.param_scheduler = [
        dict(
            type='LinearLR',
            start_factor=0.5,
            by_epoch=False,
            begin=0,
            end=max_iters,
        )
    ]
    cfg.log_level = 'WARNING'
    return cfg


def tiny_groupvit_cfg(
    toy_captions_root, work_dir, max_iters=30, config=GROUPVIT_TOY_CONFIG
):
    """The toy GroupViT (or, with ``config=MIXREORG_TOY_CONFIG``,
    MixReorg) config shrunk to 32x32 images on the toy captions: patch 8
    (16 patches), width 32, 4 then 2 groups, text 2 x 32."""
    from mmengine.config import Config

    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    model = cfg.model
    model.data_preprocessor.size = (32, 32)
    model.backbone.update(
        img_size=32,
        embed_dims=32,
        num_group_tokens=(4, 2, 0),
        num_output_groups=(4, 2),
    )
    model.text_encoder.update(width=32, heads=2)
    for projector in (model.image_projector, model.text_projector):
        projector.update(out_channels=32, hidden_channels=64)
    loader = cfg.train_dataloader
    loader.dataset.data_root = toy_captions_root
    loader.dataset.pipeline[1].scale = 32
    loader.batch_size = 8
    cfg.train_cfg.max_iters = max_iters
    cfg.param_scheduler = []
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = max_iters
    cfg.log_level = 'WARNING'
    return cfg


def run_command(cmd, cwd=REPO_ROOT, env=None, timeout=600):
    """Run ``cmd`` with this interpreter first on PATH (scripts calling
    ``python`` get it); returns the CompletedProcess."""
    full_env = dict(os.environ)
    full_env['PATH'] = (
        osp.dirname(sys.executable) + os.pathsep + full_env.get('PATH', '')
    )
    full_env.update(env or {})
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_python(args, **kwargs):
    """Run ``python ARGS`` (this interpreter) in a subprocess."""
    return run_command([sys.executable, *args], **kwargs)
