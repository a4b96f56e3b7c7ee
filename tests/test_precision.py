"""Mixed precision and gradient checkpointing of GroupViT and MixReorg.

On GPUs, ``tools/train.py --amp`` switches MMEngine's ``AmpOptimWrapper``
on (fp16, dynamic loss scale; ``--cfg-options optim_wrapper.dtype=bfloat16``
for bf16), which runs the forward pass under ``torch.autocast``; here the
same autocast runs on CPU in bf16. ``model.backbone.with_cp=True``
checkpoints the transformer layers (recomputed in the backward pass).
"""

import copy

import pytest
import torch
from mmseg.registry import MODELS

from .conftest import (
    GROUPVIT_TOY_CONFIG,
    MIXREORG_TOY_CONFIG,
    float32_atol,
    tiny_groupvit_cfg,
)
from .test_text_supervised_segmentor import batch

CONFIGS = pytest.mark.parametrize(
    'config',
    [GROUPVIT_TOY_CONFIG, MIXREORG_TOY_CONFIG],
    ids=['groupvit', 'mixreorg'],
)


def tiny_model(tmp_path, root, config, **backbone):
    cfg = tiny_groupvit_cfg(root, tmp_path, config=config)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.update(backbone)
    torch.manual_seed(0)
    return MODELS.build(model_cfg).train()


def loss_and_grads(model, seed=1):
    """Total loss of the fixed batch and every parameter's gradient, with
    the random draws (Gumbel noise, mixing plans, drop path) seeded."""
    model.zero_grad(set_to_none=True)
    inputs, samples = batch()
    torch.manual_seed(seed)
    losses = model(inputs, samples, mode='loss')
    losses = {k: v for k, v in losses.items() if k.startswith('loss')}
    sum(losses.values()).backward()
    grads = {
        name: p.grad.clone()
        for name, p in model.named_parameters()
        if p.grad is not None
    }
    return losses, grads


@CONFIGS
def test_bf16_autocast_gives_finite_losses_and_gradients(
    tmp_path, toy_captions_root, config
):
    model = tiny_model(tmp_path, toy_captions_root, config)
    dtypes = set()
    # the transformer layers really run in bf16 under autocast
    model.backbone.layers[0].blocks[0].attn.qkv.register_forward_hook(
        lambda module, args, out: dtypes.add(out.dtype)
    )
    fp32_losses, _ = loss_and_grads(model)
    assert dtypes == {torch.float32}
    dtypes.clear()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses, grads = loss_and_grads(model)
    assert dtypes == {torch.bfloat16}
    assert losses.keys() == fp32_losses.keys()
    for name, loss in losses.items():
        assert torch.isfinite(loss), (name, loss)
        # bf16 rounds each of the ~53 matmul results on the way to the
        # logits (6 per block, 4 image blocks, 2 grouping, 2 text, patch
        # embedding, projectors) to 2**-8: an embedding moves by
        # sqrt(53) * 2**-8 = 3% (random rounding), a cosine of two 64-channel
        # embeddings by 2 * 3% / sqrt(64), a logit (scale 14.3) by 0.1, the
        # cross-entropy by at most twice that
        torch.testing.assert_close(
            loss.float(), fp32_losses[name], rtol=0, atol=0.2
        )
    # parameters stay fp32; so do their gradients
    assert grads and all(g.dtype == torch.float32 for g in grads.values())
    bad = [name for name, g in grads.items() if not torch.isfinite(g).all()]
    assert not bad
    assert sum(g.abs().sum() for g in grads.values()) > 0


@CONFIGS
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(
    tmp_path, toy_captions_root, config
):
    # drop path on: the recomputation must replay the same random masks
    plain = tiny_model(tmp_path, toy_captions_root, config, drop_path_rate=0.1)
    checkpointed = tiny_model(
        tmp_path, toy_captions_root, config, drop_path_rate=0.1, with_cp=True
    )
    checkpointed.load_state_dict(plain.state_dict())
    calls = {'plain': 0, 'checkpointed': 0}
    for key, model in (('plain', plain), ('checkpointed', checkpointed)):
        # count calls of forward itself (torch runs no hooks on recompute)
        block = model.backbone.layers[0].blocks[0]

        def counted(*args, key=key, forward=block.forward, **kwargs):
            calls[key] += 1
            return forward(*args, **kwargs)

        block.forward = counted

    losses, grads = loss_and_grads(plain)
    cp_losses, cp_grads = loss_and_grads(checkpointed)
    # checkpointing is on: the layer ran again in the backward pass
    assert calls['checkpointed'] == 2 * calls['plain'] > 0
    assert losses.keys() == cp_losses.keys()
    for name in losses:
        torch.testing.assert_close(
            cp_losses[name], losses[name], rtol=1e-6, atol=1e-6
        )
    assert grads.keys() == cp_grads.keys()
    # the same kernels on the same values; only the order in which autograd
    # adds a parameter's contributions (one per branch that uses it, at most
    # 3 in MixReorg) may differ: 3 additions of terms of the gradient's size
    for name in grads:
        atol = float32_atol(3, grads[name].abs().max())
        torch.testing.assert_close(
            cp_grads[name], grads[name], rtol=0, atol=atol, msg=name
        )
