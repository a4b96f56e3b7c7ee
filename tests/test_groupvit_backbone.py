"""The GroupViT image encoder and its grouping block."""

import pytest
import torch

from mixreorg_mmseg.models.backbones import (
    GroupAssignment,
    GroupViT,
    chain_assignments,
)

TINY = dict(
    img_size=32,
    patch_size=8,
    embed_dims=32,
    depths=(1, 1, 1),
    num_heads=(2, 2, 2),
    num_group_tokens=(6, 3, 0),
    num_output_groups=(6, 3),
    drop_path_rate=0.0,
)


def tiny_groupvit(**overrides):
    torch.manual_seed(0)
    return GroupViT(**{**TINY, **overrides})


def test_shapes_and_dtypes_through_every_stage():
    model = tiny_groupvit()
    out = model(torch.randn(2, 3, 32, 32))
    assert out.hw_shape == (4, 4)
    assert out.image_embed.shape == (2, 32)
    assert out.segment_tokens.shape == (2, 3, 32)
    assert [a['hard'].shape for a in out.assignments] == [
        (2, 6, 16),
        (2, 3, 6),
    ]
    assert [a['soft'].shape for a in out.assignments] == [
        (2, 6, 16),
        (2, 3, 6),
    ]
    for tensor in (out.image_embed, out.segment_tokens):
        assert tensor.dtype == torch.float32
    torch.testing.assert_close(out.image_embed, out.segment_tokens.mean(dim=1))


def test_hard_assignment_is_one_hot_and_passes_gradients():
    torch.manual_seed(0)
    assign = GroupAssignment(dim=8, hard=True).train()
    groups = torch.randn(2, 4, 8, requires_grad=True)
    segments = torch.randn(2, 10, 8, requires_grad=True)
    out, assignment = assign(groups, segments)
    hard = assignment['hard']
    assert set(hard.detach().unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(hard.sum(dim=1), torch.ones(2, 10))
    (out * torch.randn_like(out)).sum().backward()
    assert groups.grad.abs().sum() > 0
    assert assign.q_proj.weight.grad.abs().sum() > 0
    assert assign.k_proj.weight.grad.abs().sum() > 0


def test_assignment_at_test_time_is_the_argmax_without_noise():
    torch.manual_seed(0)
    assign = GroupAssignment(dim=8).eval()
    groups, segments = torch.randn(1, 4, 8), torch.randn(1, 10, 8)
    _, first = assign(groups, segments)
    _, second = assign(groups, segments)
    torch.testing.assert_close(first['hard'], second['hard'])
    expected = torch.nn.functional.one_hot(
        first['soft'].argmax(dim=1), num_classes=4
    ).transpose(1, 2)
    torch.testing.assert_close(first['hard'], expected.float())


def test_gumbel_noise_changes_training_assignments():
    torch.manual_seed(0)
    assign = GroupAssignment(dim=8).train()
    groups, segments = torch.randn(1, 8, 8), torch.randn(1, 64, 8) * 0.01
    _, first = assign(groups, segments)
    _, second = assign(groups, segments)
    assert not torch.equal(first['hard'], second['hard'])


def test_soft_assignment_trains_without_noise():
    model = tiny_groupvit(hard_assignment=False).train()
    x = torch.randn(2, 3, 32, 32)
    first, second = model(x), model(x)
    for a, b in zip(first.assignments, second.assignments, strict=True):
        torch.testing.assert_close(a['hard'], b['hard'])
        torch.testing.assert_close(a['hard'], a['soft'])


def test_chained_assignments_trace_every_pixel_to_final_segments():
    model = tiny_groupvit().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    maps = chain_assignments(out.assignments, out.hw_shape, kind='soft')
    assert maps.shape == (2, 3, 4, 4)
    torch.testing.assert_close(maps.sum(dim=1), torch.ones(2, 4, 4))
    hard = chain_assignments(
        out.assignments, out.hw_shape, kind='hard', out_size=(32, 32)
    )
    assert hard.shape == (2, 3, 32, 32)
    patch_hard = chain_assignments(out.assignments, out.hw_shape, 'hard')
    assert set(patch_hard.unique().tolist()) <= {0.0, 1.0}


def test_every_parameter_gets_a_gradient():
    model = tiny_groupvit().train()
    out = model(torch.randn(2, 3, 32, 32))
    loss = out.image_embed.pow(2).sum() + sum(
        a['soft'].pow(2).sum() for a in out.assignments
    )
    loss.backward()
    missing = [
        name
        for name, p in model.named_parameters()
        if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing


def test_other_input_sizes_resize_the_position_embedding():
    model = tiny_groupvit().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 48, 40))
    assert out.hw_shape == (6, 5)
    assert out.assignments[0]['soft'].shape == (1, 6, 30)


def test_gradient_checkpointing_gives_the_same_result():
    x = torch.randn(2, 3, 32, 32)
    plain = tiny_groupvit(hard_assignment=False).train()
    checkpointed = tiny_groupvit(hard_assignment=False, with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    a = plain(x).image_embed.sum()
    b = checkpointed(x).image_embed.sum()
    torch.testing.assert_close(a, b)
    a.backward()
    b.backward()
    torch.testing.assert_close(
        plain.pos_embed.grad, checkpointed.pos_embed.grad
    )


def test_full_size_matches_the_reference_parameter_count():
    model = GroupViT()  # ViT-S: 384 wide, 6/3/3 layers, 64 then 8 groups
    count = sum(p.numel() for p in model.parameters())
    assert abs(count / 28.84e6 - 1) < 0.01, count


def test_init_weights_keeps_the_scratch_initialisation():
    model = tiny_groupvit()
    torch.manual_seed(1)
    model.init_weights()
    # truncated normal, std 0.02 (mmpretrain's own init would be xavier)
    ffn = model.layers[0].blocks[0].ffn.layers[0][0].weight
    assert float(ffn.detach().std()) == pytest.approx(0.02, rel=0.2)
    assert torch.equal(model.layers[1].group_token, torch.zeros(1, 3, 32))


@pytest.mark.parametrize(
    'overrides, key',
    [
        (dict(num_heads=(2, 2)), 'num_heads'),
        (dict(num_heads=(3, 2, 2)), 'num_heads'),
        (dict(num_group_tokens=(6, 3, 2)), 'num_group_tokens'),
        (dict(num_group_tokens=(6, 0, 0)), 'num_group_tokens'),
        (dict(num_output_groups=(6,)), 'num_output_groups'),
        (dict(patch_size=5), 'patch_size'),
        (dict(depths=(1,), num_heads=(2,)), 'depths'),
        (dict(drop_path_rate=1.5), 'drop_path_rate'),
        (dict(depths=1), 'depths'),
        (dict(stem_channels=(8, 16)), 'stem_channels'),
        (dict(stem_channels=()), 'stem_channels'),
        (dict(stem_convs_per_stride=2), 'stem_convs_per_stride'),
        (
            dict(stem_channels=(8, 16, 16), stem_convs_per_stride=0),
            'stem_convs_per_stride',
        ),
        (dict(stem_downsample='maxpool'), 'stem_downsample'),
        (
            dict(stem_channels=(8, 16, 16), stem_downsample='avgpool'),
            'stem_downsample',
        ),
    ],
)
def test_inconsistent_sizes_fail_at_build_naming_the_key(overrides, key):
    with pytest.raises(ValueError, match=key):
        GroupViT(**{**TINY, **overrides})


def test_conv_stem_replaces_the_patch_projection():
    x = torch.randn(2, 3, 32, 32)
    model = tiny_groupvit(stem_channels=(8, 16, 16)).train()
    tokens, hw, _ = model.embed(x)
    assert tokens.shape == (2, 16, 32) and hw == (4, 4)
    out = model(x)
    assert out.image_embed.shape == (2, 32)
    out.image_embed.pow(2).sum().backward()
    stem = model.patch_embed.convs
    assert all(
        p.grad is not None and p.grad.abs().sum() > 0
        for p in stem.parameters()
    )
    # the reference layout is untouched without the option
    plain = tiny_groupvit()
    assert 'patch_embed.projection.weight' in plain.state_dict()
    keys = plain.state_dict()
    assert not any(k.startswith('patch_embed.convs') for k in keys)


def test_deeper_stem_keeps_the_grid_and_adds_stride_one_convolutions():
    x = torch.randn(2, 3, 32, 32)
    model = tiny_groupvit(stem_channels=(8, 16, 16), stem_convs_per_stride=2)
    tokens, hw, _ = model.embed(x)
    assert tokens.shape == (2, 16, 32) and hw == (4, 4)
    convs = [
        m for m in model.patch_embed.convs if isinstance(m, torch.nn.Conv2d)
    ]
    # two 3x3 per resolution (stride 2 then 1), then the 1x1 projection
    assert [(c.kernel_size[0], c.stride[0]) for c in convs] == [
        (3, 2),
        (3, 1),
    ] * 3 + [(1, 1)]


def test_max_pooling_stem_convolves_at_full_resolution_then_pools():
    x = torch.randn(2, 3, 32, 32)
    model = tiny_groupvit(
        stem_channels=(8, 16, 16),
        stem_convs_per_stride=2,
        stem_downsample='maxpool',
    ).train()
    tokens, hw, _ = model.embed(x)
    assert tokens.shape == (2, 16, 32) and hw == (4, 4)
    layers = list(model.patch_embed.convs)
    kinds = [
        (type(m).__name__, getattr(m, 'stride', None))
        for m in layers
        if isinstance(m, (torch.nn.Conv2d, torch.nn.MaxPool2d))
    ]
    # each resolution: a stride-1 3x3, the 2x2 pooling, a stride-1 3x3
    assert kinds == [
        ('Conv2d', (1, 1)),
        ('MaxPool2d', 2),
        ('Conv2d', (1, 1)),
    ] * 3 + [('Conv2d', (1, 1))]
    # the first convolution sees the image at its own resolution
    sizes = []
    hook = layers[0].register_forward_hook(
        lambda m, i, o: sizes.append(tuple(o.shape[2:]))
    )
    model(x).image_embed.pow(2).sum().backward()
    hook.remove()
    assert sizes == [(32, 32)]
    assert all(
        p.grad is not None and p.grad.abs().sum() > 0
        for p in model.patch_embed.parameters()
    )


def _first_stage(model, tokens):
    """The first stage through the stage interface: segments, group tokens
    and ``[assignment]``."""
    num_patches = tokens.shape[1]
    groups = model.first_stage_group_tokens(tokens.shape[0])
    tokens = model.run_first_stage(torch.cat([tokens, groups], dim=1))
    groups = tokens[:, num_patches:]
    segments, assignment = model.group_first_stage(
        tokens[:, :num_patches], groups
    )
    return segments, groups, [assignment]


@pytest.mark.parametrize('readout', ['group', 'patch'])
def test_the_stage_interface_in_parts_reproduces_forward_exactly(readout):
    model = tiny_groupvit(segment_readout=readout, depths=(2, 1, 1)).train()
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(1)
    whole = model(x)
    torch.manual_seed(1)
    tokens, hw, patches = model.embed(x)
    num_patches = tokens.shape[1]
    groups = model.first_stage_group_tokens(2)
    assert groups.shape == (2, 6, 32)
    # the first stage's layers in two parts, as the mixer runs them
    tokens = torch.cat([tokens, groups], dim=1)
    tokens = model.run_first_stage(tokens, 0, 1)
    tokens = model.run_first_stage(tokens, 1, None)
    groups = tokens[:, num_patches:]
    segments, assignment = model.group_first_stage(
        tokens[:, :num_patches], groups
    )
    assert segments.shape == (2, 6, 32)
    parts = model.encode_later_stages(
        segments, groups, [assignment], hw, patches
    )
    assert torch.equal(parts.image_embed, whole.image_embed)
    assert torch.equal(parts.segment_tokens, whole.segment_tokens)
    for a, b in zip(parts.assignments, whole.assignments, strict=True):
        assert torch.equal(a['hard'], b['hard'])


def test_patch_readout_segments_know_only_the_patches_they_own():
    model = tiny_groupvit(segment_readout='patch').eval()
    x = torch.randn(2, 3, 32, 32)
    tokens, hw, patches = model.embed(x)
    grouped = _first_stage(model, tokens)
    out = model.encode_later_stages(*grouped, hw, patches)
    assert out.segment_tokens.shape == (2, 3, 32)
    owner = chain_assignments(out.assignments, hw, kind='hard').flatten(2)
    owned = owner.argmax(dim=1)  # [B, N]: the final segment of each patch
    # change the patch embeddings of one segment only (the grouping, which
    # reads the position-embedded tokens, stays as it is)
    segment = int(owned[0, 0])
    changed = patches.clone()
    changed[0, owned[0] == segment] += torch.randn(32)
    again = model.encode_later_stages(*grouped, hw, changed)
    diff = (again.segment_tokens - out.segment_tokens).abs().amax(-1)
    assert diff[0, segment] > 1e-3
    # segments that own patches: only the changed one moves (a segment
    # owning none reads the image's mean patch)
    others = [s for s in owned[0].unique().tolist() if s != segment]
    assert others and diff[0, others].max() == 0 and diff[1].max() == 0
    torch.testing.assert_close(again.image_embed, out.image_embed)


def test_patch_readout_trains_the_grouping_and_the_patch_embedding():
    model = tiny_groupvit(segment_readout='patch').train()
    out = model(torch.randn(2, 3, 32, 32))
    out.segment_tokens[:, 0].pow(2).sum().backward()
    assert model.patch_embed.projection.weight.grad.abs().sum() > 0
    # through the straight-through hard assignments
    assign = model.layers[0].downsample.assign
    assert assign.q_proj.weight.grad.abs().sum() > 0


def test_segment_readout_is_checked():
    with pytest.raises(ValueError, match='segment_readout'):
        tiny_groupvit(segment_readout='pixels')
