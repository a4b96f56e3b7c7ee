"""Mixed precision for the Runner: bf16 without a loss scaler, the
``--amp`` choice of precision, the autocast test loop's settings."""

import argparse

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmseg.registry import OPTIM_WRAPPERS

from mixreorg_mmseg.cli import (
    add_amp_args,
    configure_amp_testing,
    configure_amp_training,
    resolve_amp_dtype,
)

cpu_only = pytest.mark.skipif(
    torch.cuda.is_available(), reason='the choice made on a CPU-only host'
)


def amp_args(*argv):
    parser = argparse.ArgumentParser()
    add_amp_args(parser, 'training')
    return parser.parse_args(list(argv))


def config():
    return Config(
        dict(
            optim_wrapper=dict(
                type='OptimWrapper',
                optimizer=dict(type='AdamW', lr=1e-3),
                clip_grad=dict(max_norm=1.0),
            ),
            test_cfg=dict(type='TestLoop'),
        )
    )


@cpu_only
def test_amp_picks_bf16_on_cpu_and_refuses_fp16_there():
    assert resolve_amp_dtype(None) == 'bf16'
    assert resolve_amp_dtype('bf16') == 'bf16'
    with pytest.raises(SystemExit, match='fp16 needs a CUDA device'):
        resolve_amp_dtype('fp16')


@cpu_only
def test_amp_training_swaps_the_wrapper_and_keeps_its_settings():
    cfg = config()
    configure_amp_training(cfg, amp_args('--amp'))
    wrapper = cfg.optim_wrapper
    assert wrapper.type == 'Bf16OptimWrapper'
    assert 'loss_scale' not in wrapper and 'dtype' not in wrapper
    assert wrapper.clip_grad == dict(max_norm=1.0)
    untouched = config()
    configure_amp_training(untouched, amp_args())
    assert untouched.optim_wrapper.type == 'OptimWrapper'
    with pytest.raises(SystemExit, match='--amp-dtype needs --amp'):
        configure_amp_training(config(), amp_args('--amp-dtype', 'bf16'))


@cpu_only
def test_amp_testing_runs_the_autocast_loop():
    cfg = config()
    configure_amp_testing(cfg, amp_args('--amp'))
    assert cfg.test_cfg == dict(type='AutocastTestLoop', dtype='bfloat16')
    odd = config()
    odd.test_cfg = dict(type='SomeOtherLoop')
    with pytest.raises(SystemExit, match='SomeOtherLoop'):
        configure_amp_testing(odd, amp_args('--amp'))


def test_bf16_wrapper_autocasts_the_forward_and_steps_float32_weights():
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    wrapper = OPTIM_WRAPPERS.build(
        dict(
            type='Bf16OptimWrapper',
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        )
    )
    assert isinstance(wrapper, OptimWrapper)
    assert not hasattr(wrapper, 'loss_scaler')
    before = model.weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 8))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().square().mean())
    assert model.weight.dtype == torch.float32
    assert not torch.equal(model.weight, before)
    assert 'loss_scaler' not in wrapper.state_dict()
