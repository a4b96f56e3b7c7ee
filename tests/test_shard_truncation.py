"""Truncated shards: every cut detected and counted in samples; re-reading
of exhausted shards reported once per epoch (or refused)."""

import os
import tarfile

import numpy as np
import pytest

from mixreorg_mmseg.datasets import (
    ShardDataError,
    WebDatasetImageText,
    check_shard,
    encode_jpeg,
    write_shards,
)
from mixreorg_mmseg.datasets import webdataset_image_text as wit
from mixreorg_mmseg.datasets.shard_io import iter_raw_samples, stats_path

PER_SHARD = 6


@pytest.fixture
def log_lines():
    """The lines MMEngine's current logger writes during the test."""
    import logging

    from mmengine.logging import MMLogger

    lines = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(f'{record.levelname} {record.getMessage()}')

    logger = MMLogger.get_current_instance()
    handler = Keep()
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def _shards(root, num_shards, per_shard=PER_SHARD):
    """Shards of ``per_shard`` samples with their ``_stats.json``."""
    rng = np.random.default_rng(0)
    samples = [
        dict(
            key=f'k{i:04d}',
            jpg=encode_jpeg(rng.integers(0, 255, (8, 8, 3), np.uint8)),
            txt=f'caption {i}',
        )
        for i in range(num_shards * per_shard)
    ]
    return write_shards(samples, str(root), samples_per_shard=per_shard)


def _cut_points(shard):
    """Byte offsets that cut ``shard`` at every kind of place: each member
    boundary, inside each header, inside each member's data, and at,
    inside and after the end-of-archive marker; with, for each, whether
    members are lost."""
    with tarfile.open(shard) as tar:
        members = tar.getmembers()
    cuts = {}
    for member in members:
        cuts[member.offset] = True  # a member boundary
        cuts[member.offset + 100] = True  # inside a header
        cuts[member.offset_data + member.size // 2] = True  # inside data
    last = members[-1]
    end = last.offset_data + -(-last.size // 512) * 512
    cuts[end] = True  # at the marker: the last sample may be incomplete
    cuts[end + 512 + 100] = False  # inside the marker's second block
    cuts.pop(0)  # an empty file is another case (below)
    return end, sorted(cuts.items())


def _cut(shard, size, out):
    with open(shard, 'rb') as src, open(out, 'wb') as dst:
        dst.write(src.read()[:size])
    with open(stats_path(shard), 'rb') as src:
        with open(stats_path(out), 'wb') as dst:
            dst.write(src.read())
    return out


def test_every_cut_is_detected_and_counts_the_samples_lost(tmp_path):
    (shard,) = _shards(tmp_path / 'whole', 1)
    end, cuts = _cut_points(shard)
    assert len(cuts) > 3 * PER_SHARD  # two members a sample
    for size, members_lost in cuts:
        cut = _cut(shard, size, str(tmp_path / f'cut{size}.tar'))
        report = check_shard(cut)
        assert report.error is not None, f'cut at byte {size} not detected'
        assert report.samples + report.lost == PER_SHARD, size
        assert report.skipped['bad_shard'] == report.lost
        assert (report.lost > 0) == members_lost, size
    # an empty file, and a cut after the marker (in the zero padding of
    # the last record): nothing or everything, each known exactly
    report = check_shard(_cut(shard, 0, str(tmp_path / 'empty.tar')))
    assert (report.samples, report.lost) == (0, PER_SHARD)
    assert report.error is not None
    padded = _cut(shard, end + 1024, str(tmp_path / 'padded.tar'))
    report = check_shard(padded)
    assert (report.error, report.samples, report.lost) == (None, 6, 0)


def test_a_reader_stopping_at_the_last_sample_has_learnt_of_the_cut(
    tmp_path,
):
    """At every cut, ``on_error`` is called before the shard's last
    sample is handed over: an epoch that ends on it still counts the
    loss."""
    (shard,) = _shards(tmp_path / 'whole', 1)
    _, cuts = _cut_points(shard)
    for size, _ in cuts:
        cut = _cut(shard, size, str(tmp_path / f'cut{size}.tar'))
        total = check_shard(cut).samples
        calls = []
        samples = iter_raw_samples(cut, lambda _, n, c=calls: c.append(n))
        for i, _ in enumerate(samples, 1):
            if i == total:
                assert calls == [total], size
                break
        else:
            assert (total, calls) == (0, [0]), size


def test_a_complete_tar_short_of_its_count_is_truncated(tmp_path):
    (shard,) = _shards(tmp_path, 1)
    with open(stats_path(shard), 'w') as file:
        file.write('{"successes": 9}')
    report = check_shard(shard)
    assert (report.samples, report.lost) == (PER_SHARD, 3)
    assert 'says 9' in report.error and stats_path(shard) in report.error


def test_truncation_is_reported_outside_any_except_block(tmp_path):
    (shard,) = _shards(tmp_path / 'whole', 1)
    cut = _cut(shard, 3000, str(tmp_path / 'cut.tar'))
    seen = []

    def on_error(error, num_samples):
        import sys

        seen.append((num_samples, sys.exc_info()[0]))

    samples = list(iter_raw_samples(cut, on_error))
    assert seen == [(len(samples), None)]


def _dataset(root, **kwargs):
    kwargs.setdefault('shuffle_shards', False)
    return WebDatasetImageText(
        shards=str(root / '{00000..00004}.tar'), **kwargs
    )


def _cut_all(root, fraction):
    """Cut the 5 shards under ``root`` to ``fraction`` of their bytes in
    place; the samples each still delivers."""
    delivered = []
    for i in range(5):
        path = str(root / f'{i:05d}.tar')
        data = open(path, 'rb').read()
        with open(path, 'wb') as file:
            file.write(data[: int(len(data) * fraction)])
        delivered.append(check_shard(path).samples)
    return delivered


def test_truncated_shards_count_every_lost_sample(tmp_path):
    _shards(tmp_path, 5, per_shard=20)
    delivered = _cut_all(tmp_path, 0.2)
    lost = 5 * 20 - sum(delivered)
    assert lost > 60  # the cut loses about 80% of each shard
    dataset = _dataset(tmp_path, epoch_size=sum(delivered), max_skip_ratio=1)
    assert len(list(dataset)) == sum(delivered)
    counts = dataset.skip_counts()
    assert counts['good'] == sum(delivered)
    assert counts['reasons']['bad_shard'] == lost
    assert counts['estimated'] == 0
    assert counts['skipped'] == lost


def test_truncated_shards_trip_max_skip_ratio_without_chained_traceback(
    tmp_path,
):
    _shards(tmp_path, 5, per_shard=20)
    delivered = _cut_all(tmp_path, 0.2)
    dataset = _dataset(
        tmp_path,
        epoch_size=100,
        max_skip_ratio=0.5,
        min_samples_for_check=10,
    )
    with pytest.raises(RuntimeError, match='max_skip_ratio=0.5') as error:
        list(dataset)
    # the cut in the first shard decides: all its lost samples counted
    assert str(error.value).startswith(f'{20 - delivered[0]} of ')
    assert 'worst shard: ' + str(tmp_path / '00000.tar') in str(error.value)
    assert error.value.__context__ is None and error.value.__cause__ is None


@pytest.mark.slow  # PyTorch waits 5 s for a worker after an error
def test_skip_ratio_error_from_a_worker_is_the_reason_alone(tmp_path):
    import gc

    from torch.utils.data import DataLoader

    _shards(tmp_path, 5, per_shard=20)
    _cut_all(tmp_path, 0.2)
    dataset = _dataset(
        tmp_path, epoch_size=100, max_skip_ratio=0.5, min_samples_for_check=10
    )
    loader = DataLoader(
        dataset, batch_size=None, num_workers=1, collate_fn=lambda x: x
    )
    with pytest.raises(ShardDataError) as error:
        list(loader)
    message = str(error.value)
    assert 'Traceback' not in message and '\n' not in message
    assert 'samples skipped' in message and '00000.tar' in message
    assert message.endswith('(in DataLoader worker process 0)')
    del error  # the traceback holds the loader: shut its worker down here
    gc.collect()


def test_readers_splitting_a_shard_count_its_loss_once(tmp_path, monkeypatch):
    (shard,) = _shards(tmp_path / 'whole', 1, per_shard=20)
    cut = _cut(shard, 20000, str(tmp_path / '00000.tar'))
    delivered = check_shard(cut).samples
    # each reader needs more than its every-second sample of the shard: it
    # reads to the cut, then starts over (and stops before the cut again)
    dataset = WebDatasetImageText(
        epoch_size=delivered + 3, shards=cut, max_skip_ratio=1
    )

    class Info:
        num_workers = 2

    monkeypatch.setattr(wit, 'get_worker_info', lambda: Info)
    for worker in range(2):  # one shard, two readers: split by sample
        Info.id = worker
        list(dataset)
    assert dataset.skip_counts()['reasons']['bad_shard'] == 20 - delivered


def test_unknown_counts_are_estimated_and_labelled(tmp_path, log_lines):
    _shards(tmp_path, 5, per_shard=20)
    for i in range(5):
        os.remove(stats_path(str(tmp_path / f'{i:05d}.tar')))
    path = str(tmp_path / '00003.tar')
    data = open(path, 'rb').read()
    with open(path, 'wb') as file:
        file.write(data[: len(data) // 2])
    delivered = check_shard(path).samples
    dataset = _dataset(tmp_path, epoch_size=80 + delivered)
    list(dataset)
    counts = dataset.skip_counts()
    # the median of the 3 complete shards read before it: 20 samples
    assert counts['reasons']['bad_shard'] == counts['estimated']
    assert counts['estimated'] == 20 - delivered
    (line,) = [line for line in log_lines if 'stops after' in line]
    assert line.startswith('WARNING shard ' + path)
    assert 'an estimate' in line
    # the training log's skip line says how much of it is estimated
    from types import SimpleNamespace

    from mixreorg_mmseg.engine import ShardedDataHook

    logged = []
    runner = SimpleNamespace(
        train_loop=SimpleNamespace(
            dataloader=SimpleNamespace(dataset=dataset)
        ),
        logger=SimpleNamespace(info=logged.append),
        iter=1,
    )
    ShardedDataHook()._log(runner, force=True)
    assert (
        f'bad_shard {20 - delivered} (about {20 - delivered} estimated)'
        in (logged[0])
    )


def _reread_dataset(root, **kwargs):
    _shards(root, 2, per_shard=4)
    return WebDatasetImageText(
        shards=str(root / '{00000..00001}.tar'), **kwargs
    )


def _rereads(lines):
    return [line for line in lines if 'samples repeat' in line]


def test_rereading_warns_once_per_epoch_with_the_numbers(
    tmp_path, log_lines, monkeypatch
):
    dataset = _reread_dataset(tmp_path, epoch_size=12)

    class Info:
        num_workers = 2

    monkeypatch.setattr(wit, 'get_worker_info', lambda: Info)
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        for worker in range(2):  # two workers of one rank: one warning
            Info.id = worker
            assert len(list(dataset)) == 6
        lines = _rereads(log_lines)
        del log_lines[:]
        assert len(lines) == 1, lines
        assert 'WARNING' in lines[0] and f'epoch {epoch}:' in lines[0]
        assert 'needs 6 samples' in lines[0]
        assert 'gave 4 usable samples from its 1 shard(s)' in lines[0]
        assert 'epoch_size=12' in lines[0]


def test_allow_reread_false_makes_rereading_an_error(tmp_path):
    dataset = _reread_dataset(tmp_path, epoch_size=12, allow_reread=False)
    with pytest.raises(RuntimeError, match='allow_reread=False') as error:
        list(dataset)
    assert 'needs 12 samples' in str(error.value)
    assert 'gave 8 usable samples' in str(error.value)


def test_shuffle_buffer_read_ahead_alone_is_no_rereading(tmp_path, log_lines):
    dataset = _reread_dataset(
        tmp_path, epoch_size=8, shuffle_buffer=5, allow_reread=False
    )
    keys = [s['key'] for s in dataset]
    assert len(set(keys)) == 8
    assert not _rereads(log_lines)
