"""``torch.compile`` on the training step (MMEngine's ``compile`` switch
compiles ``model.train_step``) and on zero-shot inference, whole and
slide. ``aot_eager`` traces forward and backward as inductor does (graph
capture, graph breaks, the autograd graph) without generating C++ code,
which takes minutes per graph on a CPU; inductor itself is run by the
command in docs/benchmarks.md ("GPU")."""

import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from .conftest import (
    GROUPVIT_TOY_CONFIG,
    MIXREORG_TOY_CONFIG,
    REPO_ROOT,
    tiny_groupvit_cfg,
)

pytestmark = pytest.mark.slow

WORLD_CONFIG = 'configs/synthetic_world/groupvit_tiny_synthetic-world-64x64.py'
CAPTIONS = ['a disc and a square.', 'a triangle.', 'a square.', 'a disc.']


@pytest.mark.parametrize(
    'config',
    [GROUPVIT_TOY_CONFIG, MIXREORG_TOY_CONFIG],
    ids=['groupvit', 'mixreorg'],
)
def test_compiled_train_step_gives_the_eager_losses(
    tmp_path, toy_captions_root, config
):
    cfg = tiny_groupvit_cfg(toy_captions_root, tmp_path, config=config)
    data = dict(
        inputs=[
            torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
            for _ in CAPTIONS
        ],
        data_samples=[
            SegDataSample(metainfo=dict(caption=c)) for c in CAPTIONS
        ],
    )
    logs = []
    for compiled in (False, True):
        torch.manual_seed(0)
        model = MODELS.build(copy.deepcopy(cfg.model)).train()
        wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0))
        step = model.train_step
        if compiled:
            step = torch.compile(step, backend='aot_eager')
        torch.manual_seed(1)
        logs.append(step(copy.deepcopy(data), wrapper))
    eager, compiled = logs
    assert eager.keys() == compiled.keys()
    for key, value in eager.items():
        # the same operations; a fused graph may reorder a reduction
        torch.testing.assert_close(compiled[key], value, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_compiled_zero_shot_inference_gives_the_eager_prediction(mode):
    cfg = Config.fromfile(osp.join(REPO_ROOT, WORLD_CONFIG))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.noun_prompts.vocabulary = ['disc', 'square', 'triangle']
    model_cfg.test_cfg = (
        dict(mode='whole')
        if mode == 'whole'
        else dict(mode='slide', crop_size=(64, 64), stride=(32, 32))
    )
    torch.manual_seed(0)
    model = MODELS.build(model_cfg).eval()
    model.decode_head.set_class_names(['background', 'disc', 'square'])
    inputs = torch.randn(1, 3, 96, 96)
    meta = dict(ori_shape=(96, 96), img_shape=(96, 96), pad_shape=(96, 96))
    samples = [SegDataSample(metainfo=meta)]
    with torch.no_grad():
        eager = model.predict(inputs, copy.deepcopy(samples))
        compiled = torch.compile(model.predict, backend='aot_eager')(
            inputs, copy.deepcopy(samples)
        )
    torch.testing.assert_close(
        compiled[0].seg_logits.data, eager[0].seg_logits.data
    )
