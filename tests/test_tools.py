"""The command-line tools end to end, as a user runs them."""

import glob
import os.path as osp
import re
import socket

import pytest
import torch

from tests.conftest import run_command, run_python, tiny_train_cfg

pytestmark = pytest.mark.slow


@pytest.fixture
def tiny_config(tmp_path, toy_root):
    path = str(tmp_path / 'tiny_config.py')
    tiny_train_cfg(toy_root, tmp_path / 'unused').dump(path)
    return path


def _output(proc):
    return proc.stdout + proc.stderr


def _ok(proc):
    assert proc.returncode == 0, _output(proc)[-4000:]
    return _output(proc)


def test_train_then_test_reports_miou_and_writes_outputs(
    tiny_config, tmp_path
):
    work = str(tmp_path / 'work')
    _ok(run_python(['tools/train.py', tiny_config, '--work-dir', work]))
    ckpt = osp.join(work, 'iter_4.pth')
    assert osp.isfile(ckpt)

    out, show = str(tmp_path / 'pred'), str(tmp_path / 'vis')
    log = _ok(
        run_python(
            [
                'tools/test.py',
                tiny_config,
                ckpt,
                '--work-dir',
                work,
                '--out',
                out,
                '--show-dir',
                show,
                '--cfg-options',
                'log_level=INFO',
            ]
        )
    )
    assert 'per class results' in log and 'mIoU' in log
    for name in ('background', 'disc', 'square', 'triangle'):
        assert re.search(rf'\|\s+{name}\s+\|', log), name
    assert len(glob.glob(osp.join(out, '*.png'))) == 4
    drawn = glob.glob(osp.join(show, '**', '*.png'), recursive=True)
    assert len(drawn) == 4


def test_resume_continues_from_the_latest_checkpoint(tiny_config, tmp_path):
    work = str(tmp_path / 'work')
    _ok(run_python(['tools/train.py', tiny_config, '--work-dir', work]))
    log = _ok(
        run_python(
            [
                'tools/train.py',
                tiny_config,
                '--work-dir',
                work,
                '--resume',
                '--cfg-options',
                'train_cfg.max_iters=6',
                'log_level=INFO',
            ]
        )
    )
    assert 'resumed epoch: 0, iter: 4' in log
    assert osp.isfile(osp.join(work, 'iter_6.pth'))


def test_resume_from_a_missing_checkpoint_names_it(tiny_config, tmp_path):
    proc = run_python(
        ['tools/train.py', tiny_config, '--resume', str(tmp_path / 'x.pth')]
    )
    assert proc.returncode != 0
    assert 'checkpoint not found' in proc.stderr and 'x.pth' in proc.stderr


def test_stock_mmseg_train_tool_runs_our_config(tiny_config, tmp_path):
    import mmseg

    stock_train = osp.join(
        osp.dirname(mmseg.__file__), '.mim', 'tools', 'train.py'
    )
    if not osp.isfile(stock_train):
        pytest.skip('this mmseg install ships no tools/train.py')
    work = str(tmp_path / 'work')
    _ok(run_python([stock_train, tiny_config, '--work-dir', work]))
    assert osp.isfile(osp.join(work, 'iter_4.pth'))


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a CPU-only host')
def test_amp_on_cpu_trains_and_tests_in_bf16_and_fp16_says_why(
    tiny_config, tmp_path
):
    work = str(tmp_path / 'work')
    log = _ok(
        run_python(
            ['tools/train.py', tiny_config, '--work-dir', work, '--amp']
            + ['--cfg-options', 'log_level=INFO']
        )
    )
    assert log.count('mixed precision: bf16 autocast on cpu, no loss') == 1
    assert 'loss_scale' not in log and 'grad_norm: inf' not in log
    ckpt = osp.join(work, 'iter_4.pth')
    log = _ok(
        run_python(
            ['tools/test.py', tiny_config, ckpt, '--work-dir', work, '--amp']
            + ['--cfg-options', 'log_level=INFO']
        )
    )
    assert 'mixed precision: bfloat16 autocast for testing' in log
    assert 'mIoU' in log
    proc = run_python(
        ['tools/train.py', tiny_config, '--amp', '--amp-dtype', 'fp16']
    )
    assert proc.returncode != 0
    assert '--amp-dtype fp16 needs a CUDA device' in proc.stderr


def free_port() -> int:
    """A TCP port nobody listens on now (train and test each get their
    own: a port just released by the first launch may still be busy)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_dist_train_and_test_run_two_processes(tiny_config, tmp_path):
    work = str(tmp_path / 'work')

    def launch(script, *args):
        cmd = ['bash', script, *args, '--work-dir', work]
        cmd += ['--cfg-options', 'log_level=INFO']
        log = _ok(run_command(cmd, env={'PORT': str(free_port())}))
        assert 'Distributed training: True' in log
        assert 'GPU number: 2' in log  # MMEngine's name for the world size
        return log

    log = launch('tools/dist_train.sh', tiny_config, '2')
    if not torch.cuda.is_available():
        assert "type='mmseg.DeviceAgnosticDDP'" in log
    ckpt = osp.join(work, 'iter_4.pth')
    assert osp.isfile(ckpt)

    log = launch('tools/dist_test.sh', tiny_config, ckpt, '2')
    # 4 validation images over 2 processes: 2 iterations each
    assert re.search(r'Iter\(test\) \[2/2\].*mIoU', log)
