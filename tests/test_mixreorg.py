"""MixReorg: the segmentor with the mixer on, against the GroupViT baseline."""

import copy

import pytest
import torch
from mmseg.registry import MODELS

from .conftest import MIXREORG_TOY_CONFIG, tiny_groupvit_cfg
from .test_text_supervised_segmentor import batch

MIXREORG_LOSSES = (
    'loss_contrastive',
    'loss_multi_label',
    'loss_restored_contrastive',
    'loss_mixed_seg',
)


def tiny_mixreorg_cfg(tmp_path, root, **overrides):
    cfg = tiny_groupvit_cfg(root, tmp_path, config=MIXREORG_TOY_CONFIG)
    model = copy.deepcopy(cfg.model)
    model.update(overrides)
    return model


def build(model_cfg):
    torch.manual_seed(0)
    return MODELS.build(model_cfg)


def test_the_mixer_adds_the_restored_and_segmentation_losses(
    tmp_path, toy_captions_root
):
    model = build(tiny_mixreorg_cfg(tmp_path, toy_captions_root)).train()
    assert model.with_mixer
    losses = model(*batch(), mode='loss')
    assert set(losses) == {*MIXREORG_LOSSES, 'logit_scale', 'mixed_seg_acc'}
    for key in MIXREORG_LOSSES:
        assert losses[key].ndim == 0 and torch.isfinite(losses[key])
    assert 0.0 <= losses['mixed_seg_acc'].item() <= 1.0


def test_the_mixer_owns_its_losses_and_their_settings(
    tmp_path, toy_captions_root
):
    # the bare mixer gets the default losses; they hold no weights, so a
    # checkpoint's keys do not depend on where the losses live
    model = build(
        tiny_mixreorg_cfg(
            tmp_path, toy_captions_root, mixer=dict(type='MixReorgMixer')
        )
    ).train()
    assert model.mixer.restored_contrastive_loss.loss_name == (
        'loss_restored_contrastive'
    )
    assert model.mixer.mixed_segmentation_loss.candidates == 'group'
    assert model.mixer.seg_assignment == 'hard'
    assert not any('_loss' in key for key in model.state_dict())
    # a weight set in the mixer's config is the one its loss uses
    silent = dict(
        type='ImageTextContrastiveLoss',
        loss_weight=0.0,
        loss_name='loss_restored_contrastive',
    )
    model = build(
        tiny_mixreorg_cfg(
            tmp_path,
            toy_captions_root,
            mixer=dict(type='MixReorgMixer', restored_contrastive_loss=silent),
        )
    ).train()
    losses = model(*batch(), mode='loss')
    assert losses['loss_restored_contrastive'].item() == 0.0
    assert losses['loss_mixed_seg'].item() > 0.0
    with pytest.raises(ValueError, match='seg_assignment'):
        build(
            tiny_mixreorg_cfg(
                tmp_path,
                toy_captions_root,
                mixer=dict(type='MixReorgMixer', seg_assignment='fuzzy'),
            )
        )


def test_the_original_branch_is_what_groupvit_computes_alone(
    tmp_path, toy_captions_root
):
    # the mixer runs the backbone through its stage interface in parts,
    # with the mixed and restored images batched alongside; without noise
    # (eval) its original branch is the backbone's own forward
    model = build(tiny_mixreorg_cfg(tmp_path, toy_captions_root)).eval()
    inputs, _ = batch()
    with torch.no_grad():
        branches = model.mixer(model.backbone, inputs)
        alone = model.backbone(inputs)
    original = branches.original
    torch.testing.assert_close(original.image_embed, alone.image_embed)
    torch.testing.assert_close(original.segment_tokens, alone.segment_tokens)
    for a, b in zip(original.assignments, alone.assignments, strict=True):
        torch.testing.assert_close(a['soft'], b['soft'])


def test_the_branches_have_groupvit_shapes(tmp_path, toy_captions_root):
    model = build(tiny_mixreorg_cfg(tmp_path, toy_captions_root)).train()
    inputs, _ = batch()
    out = model.mixer(model.backbone, inputs)
    for branch in (out.original, out.mixed, out.restored):
        assert branch.image_embed.shape == (6, 32)
        assert branch.segment_tokens.shape == (6, 2, 32)
        assert [a['hard'].shape for a in branch.assignments] == [
            (6, 4, 16),
            (6, 2, 4),
        ]
    assert out.plan.labels().shape == (6, 16)


@pytest.mark.parametrize('loss_name', MIXREORG_LOSSES)
def test_every_loss_reaches_the_backbone_and_the_text_encoder(
    tmp_path, toy_captions_root, loss_name
):
    model = build(tiny_mixreorg_cfg(tmp_path, toy_captions_root)).train()
    model(*batch(), mode='loss')[loss_name].backward()
    for part in (model.backbone, model.text_encoder):
        grads = [p.grad for p in part.parameters() if p.grad is not None]
        assert grads and sum(g.abs().sum() for g in grads) > 0, part


def test_every_parameter_receives_a_gradient(tmp_path, toy_captions_root):
    model = build(tiny_mixreorg_cfg(tmp_path, toy_captions_root)).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    # one step first: the progressive blocks' output projection starts at
    # zero, so nothing before it has a gradient at the very first step
    for _ in range(2):
        optimizer.zero_grad()
        losses = model(*batch(), mode='loss')
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        optimizer.step()
    missing = [
        name
        for name, p in model.named_parameters()
        if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing


@pytest.mark.slow
def test_a_tiny_mixreorg_overfits_a_fixed_batch(tmp_path, toy_captions_root):
    model = build(tiny_mixreorg_cfg(tmp_path, toy_captions_root)).train()
    # the same plan every step: a fixed batch of mixed images
    model.mixer.patch_mixer.seed = None
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    inputs, samples = batch()
    history = []
    for _ in range(60):
        model.mixer.patch_mixer._generator = torch.Generator().manual_seed(0)
        losses = model(inputs, samples, mode='loss')
        total = sum(v for k, v in losses.items() if k.startswith('loss'))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append({k: losses[k].item() for k in MIXREORG_LOSSES})
    for key in (
        'loss_contrastive',
        'loss_restored_contrastive',
        'loss_mixed_seg',
    ):
        first = history[0][key]
        last = min(h[key] for h in history[-5:])
        assert last < 0.7 * first, (key, [h[key] for h in history])


def test_test_time_forward_equals_the_groupvit_baseline_with_its_weights(
    tmp_path, toy_captions_root
):
    """A MixReorg checkpoint is a GroupViT checkpoint plus the mixer's
    (training-only) weights: same zero-shot features, bit for bit."""
    mixreorg = build(tiny_mixreorg_cfg(tmp_path, toy_captions_root))
    # train a little so the weights are not the initial ones
    optimizer = torch.optim.AdamW(mixreorg.parameters(), lr=1e-3)
    for seed in range(2):
        losses = mixreorg(*batch(seed=seed), mode='loss')
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        optimizer.step()
        optimizer.zero_grad()
    baseline_cfg = tiny_mixreorg_cfg(tmp_path, toy_captions_root, mixer=None)
    baseline = build(baseline_cfg)
    assert not baseline.with_mixer
    state = mixreorg.state_dict()
    result = baseline.load_state_dict(state, strict=False)
    assert result.missing_keys == []
    assert result.unexpected_keys
    assert all(k.startswith('mixer.') for k in result.unexpected_keys)

    inputs, _ = batch(seed=7)
    mixreorg.eval()
    baseline.eval()
    with torch.no_grad():
        ours, theirs = (
            mixreorg.encode_image(inputs),
            baseline.encode_image(inputs),
        )
        texts = ['a disc', 'a square']
        assert torch.equal(
            mixreorg.encode_text(texts), baseline.encode_text(texts)
        )
    for key in ('image_embed', 'segment_embeds'):
        assert torch.equal(ours[key], theirs[key])
    for a, b in zip(
        ours['output'].assignments, theirs['output'].assignments, strict=True
    ):
        assert torch.equal(a['soft'], b['soft'])


@pytest.mark.parametrize(
    'mixer, key',
    [
        (dict(type='MixReorgMixer', mix_layer=5), 'mix_layer'),
        (dict(type='MixReorgMixer', unit=3), 'unit'),
        (dict(type='MixReorgMixer', embed_dims=48), 'embed_dims'),
    ],
)
def test_a_mixer_that_does_not_fit_the_backbone_fails_at_build(
    tmp_path, toy_captions_root, mixer, key
):
    with pytest.raises(ValueError, match=key):
        MODELS.build(
            tiny_mixreorg_cfg(tmp_path, toy_captions_root, mixer=mixer)
        )


@pytest.mark.slow
def test_runner_trains_a_tiny_mixreorg_logging_the_losses_separately(
    tmp_path, toy_captions_root
):
    from mmengine.runner import Runner

    cfg = tiny_groupvit_cfg(
        toy_captions_root, tmp_path, max_iters=20, config=MIXREORG_TOY_CONFIG
    )
    cfg.log_level = 'INFO'
    runner = Runner.from_cfg(cfg)
    runner.train()
    hub = runner.message_hub
    for key in (*MIXREORG_LOSSES, 'mixed_seg_acc'):
        assert len(hub.get_scalar(f'train/{key}').data[0]) == 20, key
    log = next(tmp_path.rglob('*.log')).read_text(encoding='utf-8')
    for key in MIXREORG_LOSSES:
        assert f'{key}: ' in log


@pytest.mark.parametrize(
    'mixer, blocks',
    [
        (dict(type='MixReorgMixer', mix_layer=0), 2),  # raw patches
        (dict(type='MixReorgMixer', mix_layer=1), 1),
        (dict(type='MixReorgMixer', mix_layer=2), 1),  # end of the stage
        (dict(type='MixReorgMixer', mix_layer=1, progressive=False), 0),
        (dict(type='MixReorgMixer', group_size=3, unit=2), 1),
    ],
)
def test_every_mixing_setting_trains(
    tmp_path, toy_captions_root, mixer, blocks
):
    model = build(tiny_mixreorg_cfg(tmp_path, toy_captions_root, mixer=mixer))
    assert len(model.mixer.progressive_blocks) == blocks
    losses = model(*batch(), mode='loss')
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.pos_embed.grad.abs().sum() > 0
