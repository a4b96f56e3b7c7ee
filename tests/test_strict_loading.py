"""Evaluation loads a checkpoint only if it fits the model: missing,
unexpected and reshaped keys are refused in short, naming the file and the
config; the training-only mixer keys of a MixReorg checkpoint are dropped
with one log line; ``--non-strict`` overrides it knowingly."""

import copy
import logging
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mixreorg_mmseg.utils.checkpoint_keys import (
    CheckpointMismatchError,
    match_state_dict,
    summarize_keys,
)
from mixreorg_mmseg.utils.safe_checkpoint import safe_torch_save

from .conftest import MIXREORG_TOY_CONFIG, REPO_ROOT, run_python

TOY_ZERO_SHOT_CONFIG = osp.join(
    REPO_ROOT, 'configs/zero_shot/groupvit_tiny_toy-segmentation-64x64.py'
)


def _state(*keys, shape=(2,)):
    return {key: torch.zeros(shape) for key in keys}


def test_mixer_keys_are_dropped_with_one_log_line(caplog):
    model = _state('backbone.a', 'backbone.b')
    checkpoint = _state('backbone.a', 'backbone.b', 'mixer.x', 'mixer.y')
    with caplog.at_level(logging.INFO):
        matched = match_state_dict(model, checkpoint, source='m.pth')
    assert sorted(matched) == ['backbone.a', 'backbone.b']
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert 'm.pth: dropped 2 training-only keys (mixer.*)' in lines[0]


def test_mixer_keys_must_match_when_resuming():
    model = _state('backbone.a')
    with pytest.raises(CheckpointMismatchError, match='unexpected .* mixer'):
        match_state_dict(
            model,
            _state('backbone.a', 'mixer.x'),
            source='m.pth',
            drop_training_only=False,
        )


def test_mismatch_is_listed_in_short_naming_file_and_config():
    model = _state(
        *(f'backbone.stem.{i}.weight' for i in range(12)),
        *(f'backbone.stages.1.{i}' for i in range(49)),
        'head.w',
    )
    checkpoint = _state('head.w', 'extra.one', 'extra.two')
    with pytest.raises(CheckpointMismatchError) as info:
        match_state_dict(model, checkpoint, source='x.pth', config='c.py')
    message = str(info.value)
    assert message.startswith(
        'checkpoint x.pth does not match the model built from c.py'
    )
    assert 'missing in the checkpoint 61: backbone.stages.* (49), ' in message
    assert 'backbone.stem.* (12)' in message
    assert 'unexpected (not in the model) 2: extra.* (2)' in message
    # in short: the first few names, not all 61
    assert message.count('backbone.stages.1.') == 0
    assert message.count('backbone.stem.') == 1 + 4


def test_reshaped_keys_are_refused():
    with pytest.raises(CheckpointMismatchError, match=r'w \[3\] vs \[2\]'):
        match_state_dict(_state('w'), _state('w', shape=(3,)), source='x.pth')


def test_non_strict_warns_and_keeps_what_matches(caplog):
    model = _state('a', 'b', 'w')
    checkpoint = {**_state('a', 'zzz'), 'w': torch.zeros(3)}
    with caplog.at_level(logging.WARNING):
        matched = match_state_dict(model, checkpoint, 'x.pth', strict=False)
    assert sorted(matched) == ['a']
    assert 'does not match' in caplog.text and 'non-strictly' in caplog.text


def test_module_prefix_of_a_wrapped_model_is_removed():
    matched = match_state_dict(_state('a'), _state('module.a'), 'x.pth')
    assert list(matched) == ['a']


def test_summary_counts_groups_and_names_the_first_keys():
    keys = [f'a.b.{i}.w' for i in range(6)] + ['c.d']
    assert summarize_keys(keys) == (
        '7: a.b.* (6), c.* (1); first: a.b.0.w, a.b.1.w, a.b.2.w, a.b.3.w, ...'
    )
    assert summarize_keys(['x.y.z.w', 'x.y.z.v']).startswith('2: x.y.z.* (2)')


# -- through the tools ------------------------------------------------------


def _checkpoint_of(model_cfg, path):
    from mmseg.registry import MODELS

    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(model_cfg))
    safe_torch_save({'meta': {}, 'state_dict': model.state_dict()}, path)
    return str(path)


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """A MixReorg toy checkpoint (the zero-shot config's network plus the
    mixer) and one of another architecture (a single grouping stage)."""
    tmp = tmp_path_factory.mktemp('strict')
    mixreorg = Config.fromfile(MIXREORG_TOY_CONFIG).model
    other = copy.deepcopy(Config.fromfile(TOY_ZERO_SHOT_CONFIG).model)
    other.backbone.update(
        depths=(2, 2),
        num_heads=(2, 2),
        num_group_tokens=(8, 0),
        num_output_groups=(8,),
    )
    return dict(
        mixreorg=_checkpoint_of(mixreorg, tmp / 'mixreorg.pth'),
        other=_checkpoint_of(other, tmp / 'other.pth'),
    )


def _test_tool(checkpoint, toy_root, tmp_path, *extra):
    return run_python(
        [
            'tools/test.py',
            TOY_ZERO_SHOT_CONFIG,
            checkpoint,
            '--work-dir',
            str(tmp_path / 'work'),
            *extra,
            '--cfg-options',
            f'test_dataloader.dataset.data_root={toy_root}',
        ]
    )


@pytest.mark.slow
def test_tools_test_refuses_another_architecture(
    checkpoints, toy_root, tmp_path
):
    proc = _test_tool(checkpoints['other'], toy_root, tmp_path)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('CheckpointMismatchError: checkpoint ')
    assert checkpoints['other'] in last and TOY_ZERO_SHOT_CONFIG in last
    assert 'missing in the checkpoint' in last
    assert 'Traceback' not in proc.stderr
    assert 'Iter(test)' not in proc.stdout

    # knowingly: the matching keys load, a warning lists the rest
    proc = _test_tool(checkpoints['other'], toy_root, tmp_path, '--non-strict')
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'loading non-strictly' in proc.stdout + proc.stderr


@pytest.mark.slow
def test_tools_test_drops_the_mixer_of_a_mixreorg_checkpoint_once(
    checkpoints, toy_root, tmp_path
):
    proc = _test_tool(checkpoints['mixreorg'], toy_root, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = proc.stdout + proc.stderr
    assert log.count('training-only keys (mixer.*)') == 1
    assert 'unexpected key' not in log and 'mixer.' not in log.replace(
        '(mixer.*)', ''
    )
    assert 'Iter(test)' in log and 'mIoU' in log


@pytest.mark.slow
@pytest.mark.parametrize('tool', ['demo.py', 'visualize_groups.py'])
def test_one_image_tools_refuse_another_architecture(
    checkpoints, toy_root, tmp_path, tool
):
    image = osp.join(toy_root, 'images', 'val', 'val_00000.jpg')
    args = [
        f'tools/{tool}',
        image,
        TOY_ZERO_SHOT_CONFIG,
        checkpoints['other'],
        '--classes',
        'disc,square',
        '--device',
        'cpu',
        '--out',
        str(tmp_path / 'out.png'),
    ]
    proc = run_python(args)
    assert proc.returncode != 0
    assert 'CheckpointMismatchError' in proc.stderr
    assert checkpoints['other'] in proc.stderr
    assert 'Traceback' not in proc.stderr
    assert run_python([*args, '--non-strict']).returncode == 0


def test_zero_shot_api_is_strict_and_drops_the_mixer(checkpoints):
    from mixreorg_mmseg.apis import init_zero_shot_model

    with pytest.raises(CheckpointMismatchError, match='other.pth'):
        init_zero_shot_model(
            TOY_ZERO_SHOT_CONFIG, checkpoints['other'], ['disc']
        )
    model = init_zero_shot_model(
        TOY_ZERO_SHOT_CONFIG, checkpoints['mixreorg'], ['disc']
    )
    saved = torch.load(checkpoints['mixreorg'], weights_only=True)
    state = model.state_dict()
    assert not any(key.startswith('mixer.') for key in state)
    # every other weight of the checkpoint is the model's
    kept = [k for k in saved['state_dict'] if not k.startswith('mixer.')]
    assert kept and all(
        torch.equal(state[k].cpu(), saved['state_dict'][k]) for k in kept
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    'content, reason',
    [(b'', 'the file is empty'), (b'not a checkpoint\n', 'not a PyTorch')],
)
def test_tools_test_names_an_unreadable_checkpoint(
    toy_root, tmp_path, content, reason
):
    path = tmp_path / 'bad.pth'
    path.write_bytes(content)
    proc = _test_tool(str(path), toy_root, tmp_path)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('UnreadableCheckpointError: cannot read ')
    assert str(path) in last and reason in last
    assert 'Traceback' not in proc.stderr
