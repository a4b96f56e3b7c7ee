"""The segmentor trained from image-text pairs (GroupViT)."""

import copy

import pytest
import torch
from mmengine.structures import PixelData  # noqa: F401
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from .conftest import tiny_groupvit_cfg

CAPTIONS = [
    'a photo of a disc and a square.',
    'a triangle next to a square.',
    'there is a disc.',
    'a square, a triangle and a disc.',
    'an image of a triangle.',
    'a square on its own.',
]


def tiny_model_cfg(tmp_path, toy_captions_root, **overrides):
    cfg = tiny_groupvit_cfg(toy_captions_root, tmp_path)
    model = copy.deepcopy(cfg.model)
    model.update(overrides)
    return model


def build(model_cfg):
    torch.manual_seed(0)
    return MODELS.build(model_cfg)


def batch(captions=CAPTIONS, size=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(len(captions), 3, size, size, generator=gen)
    samples = [
        SegDataSample(metainfo=dict(caption=c, img_path=f'{i}.jpg'))
        for i, c in enumerate(captions)
    ]
    return inputs, samples


def test_loss_mode_returns_both_losses_and_the_logged_scale(
    tmp_path, toy_captions_root
):
    model = build(tiny_model_cfg(tmp_path, toy_captions_root)).train()
    losses = model(*batch(), mode='loss')
    assert set(losses) == {
        'loss_contrastive',
        'loss_multi_label',
        'logit_scale',
    }
    assert losses['logit_scale'].item() == pytest.approx(1 / 0.07, rel=1e-5)
    assert not losses['logit_scale'].requires_grad
    for key in ('loss_contrastive', 'loss_multi_label'):
        assert losses[key].ndim == 0 and torch.isfinite(losses[key])


def test_every_parameter_receives_a_gradient_from_the_total_loss(
    tmp_path, toy_captions_root
):
    model = build(tiny_model_cfg(tmp_path, toy_captions_root)).train()
    losses = model(*batch(), mode='loss')
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    missing = [
        name
        for name, p in model.named_parameters()
        if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing


def test_repeated_prompts_encode_once_with_the_full_pass_values_and_grads(
    tmp_path, toy_captions_root
):
    # float64: the copies' gradients are summed in another order, which in
    # float32 moves a cancelling sum by more than any fixed tolerance
    model = build(tiny_model_cfg(tmp_path, toy_captions_root)).double()
    model.train()
    # 6 captions, 12 noun prompts of 3 distinct nouns: 9 distinct rows
    tokens = model.tokenize_captions(CAPTIONS)
    texts = torch.cat([tokens.captions, tokens.prompts[tokens.valid]])
    assert len(torch.unique(texts, dim=0)) < len(texts)
    seen = []
    hook = model.text_encoder.register_forward_hook(
        lambda module, args, out: seen.append(len(args[0]))
    )
    embeds = model.encode_captions(tokens)
    hook.remove()
    assert seen == [len(torch.unique(texts, dim=0))]
    weights = torch.randn(
        len(texts), embeds.captions.shape[-1], dtype=torch.float64
    )
    rows = torch.cat([embeds.captions, embeds.prompts[embeds.valid]])
    (rows * weights).sum().backward()
    grads = [p.grad.clone() for p in model.text_encoder.parameters()]
    model.zero_grad()
    full = model.text_projector(model.text_encoder(texts))
    (full * weights).sum().backward()
    torch.testing.assert_close(rows, full, rtol=1e-12, atol=1e-12)
    wants = [p.grad for p in model.text_encoder.parameters()]
    # float64 rounding of sums of terms up to the largest gradient
    atol = 1e-12 * max(w.abs().max() for w in wants)
    for got, want in zip(grads, wants, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=atol)


@pytest.mark.slow
def test_loss_falls_when_overfitting_one_fixed_batch(
    tmp_path, toy_captions_root
):
    model = build(tiny_model_cfg(tmp_path, toy_captions_root)).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    inputs, samples = batch()
    history = []
    for _ in range(40):
        losses = model(inputs, samples, mode='loss')
        total = losses['loss_contrastive'] + losses['loss_multi_label']
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append(
            (
                losses['loss_contrastive'].item(),
                losses['loss_multi_label'].item(),
            )
        )
    (c0, m0), (c1, m1) = history[0], history[-1]
    assert c1 < 0.5 * c0, history
    assert m1 < 0.8 * m0, history


def test_without_multi_label_loss_only_the_contrastive_loss_is_trained(
    tmp_path, toy_captions_root
):
    model = build(
        tiny_model_cfg(tmp_path, toy_captions_root, multi_label_loss=None)
    )
    losses = model(*batch(), mode='loss')
    assert set(losses) == {'loss_contrastive', 'logit_scale'}
    assert not hasattr(model, 'multi_label_logit_scale')


def test_segment_pooled_multi_label_loss_and_group_usage_train_the_grouping(
    tmp_path, toy_captions_root
):
    model = build(
        tiny_model_cfg(
            tmp_path,
            toy_captions_root,
            multi_label_loss=dict(
                type='MultiLabelContrastiveLoss', pooling='max'
            ),
            group_usage_loss=dict(type='GroupUsageLoss', loss_weight=1.0),
        )
    ).train()
    losses = model(*batch(), mode='loss')
    assert {'loss_multi_label', 'loss_group_usage'} <= set(losses)
    assert 0 <= losses['loss_group_usage'].item() <= 1
    losses['loss_multi_label'].backward()
    # scoring segments reaches the grouping's assignment projections
    assign = model.backbone.layers[0].downsample.assign
    assert assign.k_proj.weight.grad.abs().sum() > 0
    model.zero_grad()
    model(*batch(), mode='loss')['loss_group_usage'].backward()
    assert assign.q_proj.weight.grad.abs().sum() > 0


def test_the_multi_label_loss_type_is_checked_at_build(
    tmp_path, toy_captions_root
):
    # the segmentor decides once, at build time, which image features the
    # multi-label loss scores
    pooled = build(tiny_model_cfg(tmp_path, toy_captions_root))
    assert not pooled.multi_label_on_segments
    segments = build(
        tiny_model_cfg(
            tmp_path,
            toy_captions_root,
            multi_label_loss=dict(
                type='MultiLabelContrastiveLoss', pooling='max'
            ),
        )
    )
    assert segments.multi_label_on_segments
    with pytest.raises(TypeError, match='MultiLabelContrastiveLoss'):
        build(
            tiny_model_cfg(
                tmp_path,
                toy_captions_root,
                multi_label_loss=dict(type='ImageTextContrastiveLoss'),
            )
        )


def test_segments_owning_patches_follow_the_chained_hard_assignment(
    tmp_path, toy_captions_root
):
    model = build(tiny_model_cfg(tmp_path, toy_captions_root)).eval()
    with torch.no_grad():
        output = model(batch()[0], mode='tensor')['output']
    owned = model.segments_owning_patches(output)
    from mixreorg_mmseg.models.backbones import chain_assignments

    maps = chain_assignments(output.assignments, output.hw_shape, 'hard')
    expected = maps.flatten(2).sum(dim=2) > 0
    assert torch.equal(owned, expected)
    assert owned.any(dim=1).all()


def test_the_logit_scale_is_clamped(tmp_path, toy_captions_root):
    model = build(tiny_model_cfg(tmp_path, toy_captions_root))
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    losses = model(*batch(), mode='loss')
    assert losses['logit_scale'].item() == pytest.approx(100.0)


def test_encode_image_exposes_what_zero_shot_inference_needs(
    tmp_path, toy_captions_root
):
    model = build(tiny_model_cfg(tmp_path, toy_captions_root)).eval()
    inputs, _ = batch()
    with torch.no_grad():
        feats = model(inputs, mode='tensor')
        texts = model.encode_text(['a disc', 'a square', 'a triangle'])
    assert feats['image_embed'].shape == (6, 32)
    assert feats['segment_embeds'].shape == (6, 2, 32)
    assert [a['soft'].shape for a in feats['output'].assignments] == [
        (6, 4, 16),
        (6, 2, 4),
    ]
    assert texts.shape == (3, 32)


def test_a_sample_without_caption_is_named(tmp_path, toy_captions_root):
    model = build(tiny_model_cfg(tmp_path, toy_captions_root))
    inputs, samples = batch()
    samples[2] = SegDataSample(metainfo=dict(img_path='broken/0002.jpg'))
    with pytest.raises(KeyError, match='broken/0002.jpg'):
        model(inputs, samples, mode='loss')


def test_predict_without_a_zero_shot_head_says_so(tmp_path, toy_captions_root):
    model = build(tiny_model_cfg(tmp_path, toy_captions_root)).eval()
    inputs, samples = batch()
    for sample in samples:
        sample.set_metainfo(
            dict(ori_shape=(32, 32), img_shape=(32, 32), pad_shape=(32, 32))
        )
    with pytest.raises(RuntimeError, match='decode_head'):
        model(inputs, samples, mode='predict')


@pytest.mark.parametrize(
    'change, key',
    [
        (
            lambda m: m.image_projector.update(in_channels=48),
            'image_projector.in_channels',
        ),
        (
            lambda m: m.text_projector.update(in_channels=48),
            'text_projector.in_channels',
        ),
        (
            lambda m: m.text_projector.update(out_channels=16),
            'out_channels',
        ),
        (lambda m: m.update(noun_prompts=None), 'noun_prompts'),
        (lambda m: m.backbone.update(num_heads=(3, 2, 2)), 'num_heads'),
    ],
)
def test_inconsistent_sizes_fail_at_build_naming_the_key(
    tmp_path, toy_captions_root, change, key
):
    model_cfg = tiny_model_cfg(tmp_path, toy_captions_root)
    change(model_cfg)
    with pytest.raises(ValueError, match=key.replace('.', r'\.')):
        MODELS.build(model_cfg)


@pytest.mark.slow
def test_runner_trains_the_tiny_model_with_the_loss_falling(
    tmp_path, toy_captions_root
):
    from mmengine.runner import Runner

    cfg = tiny_groupvit_cfg(toy_captions_root, tmp_path, max_iters=40)
    cfg.optim_wrapper.optimizer.lr = 2e-3
    runner = Runner.from_cfg(cfg)
    runner.train()
    history = runner.message_hub.get_scalar('train/loss_contrastive').data[0]
    assert len(history) == 40
    first, last = history[:5].mean(), history[-5:].mean()
    assert last < first - 0.1, history


@pytest.mark.parametrize(
    'config, extra',
    [
        ('configs/groupvit_vit-s_cc12m.py', set()),
        ('configs/mixreorg_vit-s_cc12m.py', {'mixer'}),
    ],
)
def test_full_size_model_has_the_official_parameter_counts(config, extra):
    """GroupViT's release: image 28.84M, text 22.15M, total 55.73M; the
    MixReorg mixer adds only training-time parameters."""
    from mmengine.config import Config

    from mixreorg_mmseg.utils.parameter_count import (
        count_parameters,
        format_parameter_counts,
    )

    model = MODELS.build(Config.fromfile(config).model)
    counts = count_parameters(model)
    assert round(counts['backbone'] / 1e6, 2) == 28.84
    assert round(counts['text_encoder'] / 1e6, 2) == 22.15
    without_mixer = counts['total'] - counts.get('mixer', 0)
    assert round(without_mixer / 1e6, 2) == 55.73
    assert {'mixer'} & set(counts) == extra
    assert 'total 5' in format_parameter_counts(counts)
