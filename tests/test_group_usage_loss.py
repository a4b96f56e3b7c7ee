"""The group-usage term against the collapse of grouping."""

import pytest
import torch

from mixreorg_mmseg.models.losses import GroupUsageLoss


def _assignment(usage_per_token):
    """``[B, S, N]`` soft assignment from ``[B, N]`` group indices."""
    index = torch.as_tensor(usage_per_token)
    groups = int(index.max()) + 1
    one_hot = torch.nn.functional.one_hot(index, max(groups, 4)).float()
    return dict(soft=one_hot.transpose(1, 2))


def test_even_use_costs_nothing_and_one_group_costs_the_weight():
    loss = GroupUsageLoss(loss_weight=0.5)
    even = _assignment([[0, 1, 2, 3] * 2])
    one = _assignment([[2] * 8])
    assert loss([even]).item() == pytest.approx(0.0, abs=1e-6)
    assert loss([one]).item() == pytest.approx(0.5)
    # two of four groups, evenly: entropy log 2 of log 4
    two = _assignment([[0, 1] * 4])
    assert loss([two]).item() == pytest.approx(0.5 * 0.5)
    # averaged over images and blocks
    assert loss([even, one]).item() == pytest.approx(0.25)


def test_usage_is_per_image_not_over_the_batch():
    # each image uses one group, different groups: the batch is balanced,
    # every image is collapsed
    loss = GroupUsageLoss(loss_weight=1.0)
    per_image = _assignment([[0] * 4, [1] * 4, [2] * 4, [3] * 4])
    assert loss([per_image]).item() == pytest.approx(1.0)


def test_descent_turns_hesitant_tokens_into_confident_even_groups():
    # near-uniform logits: every token hesitates, the test-time argmax
    # would put them all in one group
    logits = (0.01 * torch.randn(1, 4, 16)).requires_grad_(True)
    logits.data[:, 0] += 0.05
    assert logits.argmax(dim=1).unique().numel() == 1
    loss = GroupUsageLoss(loss_weight=1.0)
    first = loss([dict(soft=logits.softmax(dim=1))]).item()
    assert first > 0.9
    optimizer = torch.optim.Adam([logits], lr=0.1)
    for _ in range(200):
        value = loss([dict(soft=logits.softmax(dim=1))])
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    assert value.item() < 0.1
    assert logits.argmax(dim=1).unique().numel() == 4
