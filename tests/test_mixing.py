"""MixReorg's mixing plans, restoration and progressive mixing."""

import pytest
import torch
import torch.nn.functional as F

from mixreorg_mmseg.models.mixers import (
    MixingPlan,
    PatchMixer,
    ProgressiveMixingBlock,
)

from .conftest import float32_atol


@pytest.mark.parametrize(
    'batch, group_size, unit, grid',
    [
        (8, 2, 1, (4, 4)),
        (7, 3, 2, (4, 6)),
        (5, 4, 1, (3, 5)),
        (6, 6, 3, (6, 3)),
    ],
)
def test_restore_inverts_mixing_exactly(batch, group_size, unit, grid):
    mixer = PatchMixer(group_size=group_size, unit=unit, seed=0)
    plan = mixer.plan(batch, grid)
    tokens = torch.randn(batch, grid[0] * grid[1], 5)
    mixed = plan.mix(tokens)
    assert plan.is_permutation()
    assert not torch.equal(mixed, tokens)
    assert torch.equal(plan.restore(mixed), tokens)
    assert torch.equal(plan.mix(plan.restore(tokens)), tokens)


def _patches(images, p):
    """[B, 3, H, W] -> [B, N, 3 * p * p] (row-major patches)."""
    return F.unfold(images, kernel_size=p, stride=p).transpose(1, 2)


def _image(patches, hw, p):
    size = (hw[0] * p, hw[1] * p)
    return F.fold(patches.transpose(1, 2), size, kernel_size=p, stride=p)


@pytest.mark.parametrize('unit', [1, 2])
def test_the_label_names_the_source_image_of_every_patch(unit):
    """Image b is painted in the constant colour b / 10: after mixing the
    pixels of every mixed image, each patch's colour must read back as the
    label the plan gives it."""
    batch, p, hw = 6, 4, (4, 4)
    colours = torch.arange(batch, dtype=torch.float32) / 10
    images = colours.view(-1, 1, 1, 1).expand(batch, 3, 16, 16).contiguous()
    plan = PatchMixer(group_size=3, unit=unit, seed=1).plan(batch, hw)
    mixed_images = _image(plan.mix(_patches(images, p)), hw, p)
    seen = (mixed_images[:, 0] * 10).round().long()  # [B, 16, 16]
    expected = plan.label_map().repeat_interleave(p, 1).repeat_interleave(p, 2)
    assert torch.equal(seen, expected)
    # tokens only come from images of the same group
    group = plan.group
    assert torch.equal(group[plan.labels()], group[:, None].expand(-1, 16))
    if unit == 1:  # 16 independent draws: every image gets several sources
        assert all(len(row.unique()) > 1 for row in plan.labels())
    else:  # blocks of 2x2 tokens move together
        blocks = plan.label_map().unfold(1, 2, 2).unfold(2, 2, 2)
        assert (blocks == blocks[..., :1, :1]).all()


def test_group_size_one_is_the_identity():
    plan = PatchMixer(group_size=1, seed=0).plan(5, (3, 3))
    tokens = torch.randn(5, 9, 4)
    assert torch.equal(plan.labels(), torch.arange(5)[:, None].expand(5, 9))
    assert torch.equal(plan.mix(tokens), tokens)
    assert torch.equal(plan.same_group(), torch.eye(5, dtype=torch.bool))


def test_mixing_is_reproducible_under_a_seed_and_differs_across_seeds():
    first = [PatchMixer(seed=3).plan(8, (4, 4)).labels() for _ in range(2)]
    assert torch.equal(first[0], first[1])
    mixer = PatchMixer(seed=3)
    sequence = [mixer.plan(8, (4, 4)).labels() for _ in range(2)]
    assert torch.equal(sequence[0], first[0])
    assert not torch.equal(sequence[0], sequence[1])
    other = PatchMixer(seed=4).plan(8, (4, 4)).labels()
    assert not torch.equal(other, first[0])
    torch.manual_seed(0)
    global_a = PatchMixer().plan(8, (4, 4)).labels()
    torch.manual_seed(0)
    global_b = PatchMixer().plan(8, (4, 4)).labels()
    assert torch.equal(global_a, global_b)


def test_bad_plans_and_settings_are_refused():
    with pytest.raises(ValueError, match='unit=3'):
        PatchMixer(unit=3).plan(4, (4, 4))
    with pytest.raises(ValueError, match='group_size'):
        PatchMixer(group_size=0)
    plan = PatchMixer().plan(4, (2, 2))
    with pytest.raises(ValueError, match=r'\[4, 4, C\]'):
        plan.mix(torch.randn(4, 5, 3))
    with pytest.raises(ValueError, match='hw_shape'):
        MixingPlan(plan.source_image, plan.source_position, plan.group, (3, 3))


def test_progressive_mixing_is_attention_to_the_source_image_only():
    """The block computes, for every mixed token, attention over the tokens
    of its own source image: compare with that attention written out over
    the whole batch with a mask."""
    torch.manual_seed(0)
    batch, n, c = 6, 9, 8
    block = ProgressiveMixingBlock(c, num_heads=2)
    torch.nn.init.normal_(block.attn.proj.weight, std=0.1)
    plan = PatchMixer(group_size=3, seed=0).plan(batch, (3, 3))
    original, mixed = torch.randn(batch, n, c), torch.randn(batch, n, c)
    out = block(mixed, original, plan)

    attn = block.attn
    heads, d = attn.num_heads, c // attn.num_heads
    q = attn.q_proj(block.norm_mixed(mixed)).view(batch * n, heads, d)
    keys = block.norm_original(original).reshape(batch * n, c)
    k = attn.k_proj(keys).view(batch * n, heads, d)
    v = attn.v_proj(keys).view(batch * n, heads, d)
    logits = torch.einsum('qhd,khd->hqk', q, k) / d**0.5
    key_image = torch.arange(batch).repeat_interleave(n)
    allowed = plan.labels().reshape(-1, 1) == key_image[None, :]
    weights = logits.masked_fill(~allowed, float('-inf')).softmax(-1)
    update = torch.einsum('hqk,khd->qhd', weights, v).reshape(batch, n, c)
    expected = mixed + attn.proj(update)
    # rounded additions: two LayerNorms (mean, variance: 4 x 8), q, k, v 8,
    # q.k 4, softmax and weighted values over the masked 54 keys (the block
    # sums 9), projection 8 and the residual: 169 terms of size |expected|
    terms = 4 * 8 + 8 + 8 + 4 + 2 * 54 + 8 + 1
    atol = float32_atol(terms, expected.abs().max())
    torch.testing.assert_close(out, expected, rtol=0, atol=atol)


def test_progressive_mixing_starts_as_the_identity():
    block = ProgressiveMixingBlock(8, num_heads=2)
    plan = PatchMixer(seed=0).plan(4, (2, 2))
    mixed = torch.randn(4, 4, 8)
    assert torch.equal(block(mixed, torch.randn(4, 4, 8), plan), mixed)
