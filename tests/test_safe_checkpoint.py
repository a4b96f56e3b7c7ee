"""Checkpoints load without running pickled code, and resume still works."""

import os
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from mixreorg_mmseg.utils.safe_checkpoint import (
    UnreadableCheckpointError,
    UnsafeCheckpointError,
    from_plain,
    load_weights,
    pickle_globals,
    safe_torch_load,
    to_plain,
)
from tests.conftest import QUICKSTART_CONFIG, run_python, tiny_train_cfg


class CodeOnUnpickle:
    """Unpickling this writes ``marker``: a stand-in for a hostile payload."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f'open({self.marker!r}, "w").write("pwned")',))


@pytest.fixture
def hostile_checkpoint(tmp_path):
    marker = tmp_path / 'code_ran'
    path = tmp_path / 'hostile.pth'
    torch.save(
        {
            'meta': {
                'iter': 2,
                'epoch': 0,
                'note': CodeOnUnpickle(str(marker)),
            },
            'state_dict': {'weight': torch.zeros(1)},
            'message_hub': {},
        },
        path,
    )
    return str(path), marker


def test_hostile_payload_really_runs_code_when_loaded_unsafely(
    hostile_checkpoint,
):
    path, marker = hostile_checkpoint
    torch.load(path, weights_only=False)
    assert marker.read_text() == 'pwned'


def _refused(load, path, marker):
    with pytest.raises(UnsafeCheckpointError) as info:
        load()
    message = str(info.value)
    assert path in message and 'global "builtins.exec"' in message
    assert 'Refusing to load' in message
    assert not marker.exists()


def _runner(tmp_path, toy_root, path, resume):
    from mmengine.runner import Runner

    cfg = tiny_train_cfg(toy_root, tmp_path / 'work')
    cfg.load_from = path
    cfg.resume = resume
    return Runner.from_cfg(cfg)


LOAD_PATHS = {
    'safe_torch_load': lambda p, tmp, toy: safe_torch_load(p),
    'load_weights': lambda p, tmp, toy: load_weights(p),
    'mmengine CheckpointLoader': lambda p, tmp, toy: __import__(
        'mmengine.runner.checkpoint', fromlist=['x']
    ).CheckpointLoader.load_checkpoint(p, map_location='cpu'),
    'mmengine load_checkpoint': lambda p, tmp, toy: __import__(
        'mmengine.runner', fromlist=['x']
    ).load_checkpoint(torch.nn.Linear(1, 1), p),
    'mmengine URL scheme': lambda p, tmp, toy: __import__(
        'mmengine.runner.checkpoint', fromlist=['x']
    ).load_url('file://' + p, model_dir=str(tmp / 'hub')),
    'Runner load_from': lambda p, tmp, toy: _runner(
        tmp, toy, p, False
    ).load_or_resume(),
    'Runner resume': lambda p, tmp, toy: _runner(
        tmp, toy, p, True
    ).load_or_resume(),
}


@pytest.mark.parametrize('force_unsafe_env', [False, True])
@pytest.mark.parametrize('load_path', sorted(LOAD_PATHS))
def test_every_load_path_refuses_a_code_running_checkpoint(
    load_path,
    force_unsafe_env,
    hostile_checkpoint,
    tmp_path,
    toy_root,
    monkeypatch,
):
    if force_unsafe_env:
        # the documented escape hatch of torch must not reopen the hole
        monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    path, marker = hostile_checkpoint
    _refused(
        lambda: LOAD_PATHS[load_path](path, tmp_path, toy_root), path, marker
    )


@pytest.mark.slow
@pytest.mark.parametrize('tool', ['test', 'train --resume'])
def test_tools_refuse_a_code_running_checkpoint(
    tool, hostile_checkpoint, tmp_path, toy_root
):
    path, marker = hostile_checkpoint
    if tool == 'test':
        args = ['tools/test.py', QUICKSTART_CONFIG, path]
    else:
        args = ['tools/train.py', QUICKSTART_CONFIG, '--resume', path]
    # the toy folder of this session, not data/ of the checkout
    roots = [
        f'{loader}.dataset.data_root={toy_root}'
        for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    ]
    args += ['--work-dir', str(tmp_path / 'work'), '--cfg-options', *roots]
    proc = run_python(args)
    assert proc.returncode != 0
    assert 'UnsafeCheckpointError' in proc.stderr
    assert f'Refusing to load checkpoint "{path}"' in proc.stderr
    assert not marker.exists()


def test_weights_only_false_is_refused(tmp_path):
    path = tmp_path / 'w.pth'
    torch.save({'w': torch.ones(2)}, path)
    with pytest.raises(ValueError, match='never loads with weights_only'):
        safe_torch_load(str(path), weights_only=False)


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_weights(str(tmp_path / 'nope.pth'))


def test_plain_form_round_trips_mmengine_objects_exactly(tmp_path):
    buffer = HistoryBuffer([0.5, 0.25, 0.125], [1, 2, 3], max_length=10)
    state = {
        'log_scalars': {'train/loss': buffer},
        'runtime_info': {
            'best_score': np.float32(71.25),
            'eta': np.float64(3.5),
            'palette': np.arange(6, dtype=np.uint8).reshape(2, 3),
            'names': ('a', 'b'),
            'weights': torch.arange(3.0),
        },
        'state_dict': torch.nn.BatchNorm1d(2).state_dict(),
    }
    path = tmp_path / 'plain.pth'
    torch.save(to_plain(state), path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []

    back = safe_torch_load(str(path))
    restored = back['log_scalars']['train/loss']
    assert isinstance(restored, HistoryBuffer)
    assert restored.max_length == 10
    for got, want in zip(restored.data, buffer.data, strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    info = back['runtime_info']
    assert type(info['best_score']) is np.float32
    assert info['best_score'] == np.float32(71.25)
    assert type(info['eta']) is np.float64 and info['eta'] == 3.5
    assert info['palette'].dtype == np.uint8
    assert np.array_equal(info['palette'], state['runtime_info']['palette'])
    assert info['names'] == ('a', 'b')
    assert torch.equal(info['weights'], torch.arange(3.0))
    # layer versions of a module's state_dict survive
    assert back['state_dict']._metadata == state['state_dict']._metadata
    assert back['state_dict']._metadata['']['version'] == 2
    # the input was not modified
    assert state['log_scalars']['train/loss'] is buffer


def test_unknown_plain_tag_is_an_error():
    with pytest.raises(ValueError, match='unknown plain-form tag'):
        from_plain({'__mixreorg_plain__': 'Nope'})


def _train(tmp_path, toy_root, max_iters, resume_from=None):
    from mmengine.runner import Runner

    cfg = tiny_train_cfg(toy_root, tmp_path / 'work', max_iters=max_iters)
    if resume_from:
        cfg.resume = True
        cfg.load_from = resume_from
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


@pytest.mark.slow
def test_runner_checkpoints_are_plain_and_resume_restores_state(
    tmp_path, toy_root
):
    first = _train(tmp_path, toy_root, max_iters=4)
    ckpt2 = osp.join(first.work_dir, 'iter_2.pth')
    assert torch.serialization.get_unsafe_globals_in_checkpoint(ckpt2) == []
    # a stock MMEngine (this package not imported) reads the weights
    stock = run_python(
        [
            '-c',
            (
                'import sys\n'
                'from mmengine.runner.checkpoint import _load_checkpoint\n'
                f'ckpt = _load_checkpoint({ckpt2!r})\n'
                'assert "mixreorg_mmseg" not in sys.modules\n'
                'print(len(ckpt["state_dict"]))\n'
            ),
        ]
    )
    assert stock.returncode == 0, stock.stderr
    assert int(stock.stdout.split()[-1]) > 0
    saved = safe_torch_load(ckpt2)
    loss_history = saved['message_hub']['log_scalars']['train/loss']
    assert isinstance(loss_history, HistoryBuffer)
    assert len(loss_history.data[0]) == 2

    from mmengine.runner import Runner

    cfg = tiny_train_cfg(toy_root, tmp_path / 'resumed', max_iters=4)
    cfg.resume = True
    cfg.load_from = ckpt2
    resumed = Runner.from_cfg(cfg)
    resumed.load_or_resume()
    assert resumed.iter == 2
    hub_history = resumed.message_hub.get_scalar('train/loss').data[0]
    assert np.array_equal(hub_history, loss_history.data[0])
    step = resumed.optim_wrapper.optimizer.state_dict()['state'][0]['step']
    assert int(step) == 2
    assert resumed.param_schedulers[0].last_step == 2
    resumed.train()
    assert resumed.iter == 4
    assert osp.isfile(osp.join(resumed.work_dir, 'iter_4.pth'))


def _stock_mmengine_checkpoint(path):
    """What a stock MMEngine writes: a pickled HistoryBuffer inside."""
    torch.save(
        {
            'meta': {'iter': 1},
            'state_dict': {'w': torch.ones(2)},
            'message_hub': {
                'log_scalars': {'train/loss': HistoryBuffer([1.0], [1])},
                'runtime_info': {},
                'resumed_keys': {},
            },
        },
        path,
    )


@pytest.mark.slow
def test_stock_checkpoint_is_refused_then_sanitized_when_trusted(tmp_path):
    src, dst = str(tmp_path / 'stock.pth'), str(tmp_path / 'safe.pth')
    _stock_mmengine_checkpoint(src)
    with pytest.raises(
        UnsafeCheckpointError, match='HistoryBuffer.*sanitize_checkpoint.py'
    ):
        safe_torch_load(src)

    refused = run_python(['tools/misc/sanitize_checkpoint.py', src, dst])
    assert refused.returncode != 0 and '--i-trust-this-file' in refused.stderr
    assert not osp.exists(dst)

    done = run_python(
        ['tools/misc/sanitize_checkpoint.py', '--i-trust-this-file', src, dst]
    )
    assert done.returncode == 0, done.stderr
    loaded = safe_torch_load(dst)
    history = loaded['message_hub']['log_scalars']['train/loss']
    assert isinstance(history, HistoryBuffer)
    assert history.data[0].tolist() == [1.0]
    assert torch.equal(loaded['state_dict']['w'], torch.ones(2))


class HookState:
    """A plain data class a user's hook might store in a checkpoint."""

    def __init__(self, count):
        self.count = count


def test_extra_classes_load_only_once_allowed(tmp_path, monkeypatch):
    from mixreorg_mmseg.utils import safe_checkpoint

    monkeypatch.setattr(safe_checkpoint, 'TRAINING_STATE_SAFE_GLOBALS', [])
    path = str(tmp_path / 'hook.pth')
    torch.save({'hook_state': HookState(3)}, path)
    with pytest.raises(UnsafeCheckpointError, match='HookState'):
        safe_torch_load(path)

    safe_checkpoint.allow_training_state_globals(HookState)
    assert safe_torch_load(path)['hook_state'].count == 3
    with pytest.raises(TypeError, match='only classes'):
        safe_checkpoint.allow_training_state_globals(print)


class SystemCallOnUnpickle:
    """Pickles as a call of ``os.system``; never unpickled here."""

    def __reduce__(self):
        return (os.system, ('true',))


def _write_system_call(path, form):
    payload = {
        'state_dict': {'w': torch.zeros(1)},
        'x': SystemCallOnUnpickle(),
    }
    if form == 'zip':
        torch.save(payload, path)
    elif form == 'legacy':
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:  # a plain pickle file, protocol 2 (GLOBAL) or 4 (STACK_GLOBAL)
        with open(path, 'wb') as f:
            pickle.dump(payload, f, protocol=int(form[-1]))


SYSTEM = f'{os.system.__module__}.system'  # posix.system on POSIX


@pytest.mark.parametrize('form', ['zip', 'legacy', 'pickle2', 'pickle4'])
def test_pickle_globals_are_read_from_the_opcodes(tmp_path, form):
    path = tmp_path / 'system.pth'
    _write_system_call(path, form)
    assert SYSTEM in pickle_globals(path)


@pytest.mark.parametrize('form', ['zip', 'legacy', 'pickle2', 'pickle4'])
def test_unsafe_message_names_the_global_and_gives_no_trust_hint(
    tmp_path, form
):
    path = tmp_path / 'system.pth'
    _write_system_call(path, form)
    for load in (safe_torch_load, load_weights):
        with pytest.raises(UnsafeCheckpointError) as info:
            load(path)
        message = str(info.value)
        assert f'global "{SYSTEM}"' in message and str(path) in message
        assert '--i-trust-this-file' not in message
        assert 'not what MMEngine writes' in message


def test_stock_mmengine_objects_are_all_named_with_the_trust_hint(tmp_path):
    path = tmp_path / 'stock.pth'
    torch.save(
        {'hub': HistoryBuffer([1.0], [1]), 'eta': np.float64(2.0)}, path
    )
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_torch_load(path)
    message = str(info.value)
    assert 'global "mmengine.logging.history_buffer.HistoryBuffer"' in message
    assert 'scalar"' in message  # the numpy scalar's constructor
    assert '--i-trust-this-file' in message


def test_stock_objects_next_to_a_foreign_global_get_no_trust_hint(tmp_path):
    path = tmp_path / 'mixed.pth'
    torch.save(
        {'hub': HistoryBuffer([1.0], [1]), 'x': SystemCallOnUnpickle()}, path
    )
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_torch_load(path)
    assert f'global "{SYSTEM}"' in str(info.value)
    assert '--i-trust-this-file' not in str(info.value)


@pytest.mark.parametrize(
    'content, reason',
    [(b'', 'empty'), (b'hello world\n', 'not a PyTorch checkpoint')],
)
def test_unreadable_checkpoint_names_the_file(tmp_path, content, reason):
    path = tmp_path / 'bad.pth'
    path.write_bytes(content)
    for load in (safe_torch_load, load_weights):
        with pytest.raises(UnreadableCheckpointError, match=reason) as info:
            load(path)
        assert str(path) in str(info.value)


def test_truncated_checkpoint_names_the_file(tmp_path):
    path = tmp_path / 'cut.pth'
    torch.save({'w': torch.ones(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableCheckpointError, match='cut.pth'):
        safe_torch_load(path)
