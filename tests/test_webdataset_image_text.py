"""Streaming image-caption shards: splitting, bad data, tools, configs."""

import io
import os
import os.path as osp
import tarfile

import numpy as np
import pytest

from mixreorg_mmseg.datasets import (
    WebDatasetImageText,
    check_shard,
    encode_jpeg,
    write_shards,
)
from mixreorg_mmseg.datasets import webdataset_image_text as wit
from mixreorg_mmseg.datasets.shard_io import stats_path

from .conftest import REPO_ROOT, run_python

PACK = [
    dict(
        type='PackSegInputs',
        meta_keys=('img_path', 'ori_shape', 'img_shape', 'caption'),
    )
]


def _jpeg(seed, size=8):
    rng = np.random.default_rng(seed)
    return encode_jpeg(rng.integers(0, 255, (size, size, 3), np.uint8))


def _samples(prefix, num):
    return [
        dict(key=f'{prefix}{i:04d}', jpg=_jpeg(i), txt=f'a {prefix} {i}')
        for i in range(num)
    ]


def _write(root, prefix, num_shards, per_shard):
    return write_shards(
        _samples(prefix, num_shards * per_shard),
        str(root),
        samples_per_shard=per_shard,
        prefix=prefix,
    )


def _read(dataset, rank, world, worker, workers, monkeypatch):
    """Keys one (simulated) rank/worker yields this epoch."""

    class Info:
        id, num_workers = worker, workers

    monkeypatch.setattr(wit, 'get_dist_info', lambda: (rank, world))
    monkeypatch.setattr(wit, 'get_worker_info', lambda: Info)
    return [s['key'] for s in dataset]


@pytest.mark.parametrize('num_shards,per_shard', [(8, 5), (3, 5)])
def test_ranks_and_workers_read_each_sample_once_per_epoch(
    tmp_path, monkeypatch, num_shards, per_shard
):
    _write(tmp_path, 's', num_shards, per_shard)
    total = num_shards * per_shard
    dataset = WebDatasetImageText(
        epoch_size=total - total % 2,
        shards=f's{{00000..{num_shards - 1:05d}}}.tar',
        data_root=str(tmp_path),
    )
    orders = []
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        keys = []
        for rank in range(2):
            for worker in range(2):
                keys += _read(dataset, rank, 2, worker, 2, monkeypatch)
        assert len(keys) == len(set(keys)) == dataset.epoch_size
        orders.append(keys)
    if num_shards == 8:  # a full epoch: no loss, new shard order
        assert (
            set(orders[0])
            == set(orders[1])
            == {f's{i:04d}' for i in range(total)}
        )
        assert orders[0] != orders[1]
    assert dataset.skip_counts()['skipped'] == 0


def test_brace_patterns_and_weighted_sources(tmp_path, monkeypatch):
    _write(tmp_path, 'a', 4, 4)
    _write(tmp_path, 'b', 2, 4)
    dataset = WebDatasetImageText(
        epoch_size=16,
        sources=[
            dict(shards=['a{00000..00001}.tar', 'a{00002..00003}.tar']),
            dict(shards='b{00000..00001}.tar', weight=1 / 3),
        ],
        data_root=str(tmp_path),
    )
    assert len(dataset.shards) == 6
    keys = _read(dataset, 0, 1, 0, 1, monkeypatch)
    assert len(set(keys)) == 16
    assert sum(k.startswith('a') for k in keys) == 12
    assert keys != sorted(keys)  # interleaved, not one source then another
    with pytest.raises(
        FileNotFoundError, match='6 of the 10 shards.*a00004.tar'
    ):
        WebDatasetImageText(
            epoch_size=4, shards='a{00000..00009}.tar', data_root=tmp_path
        )


def test_resume_skips_the_batches_already_trained(tmp_path, monkeypatch):
    _write(tmp_path, 's', 4, 4)
    dataset = WebDatasetImageText(
        epoch_size=16, shards=str(tmp_path / 's{00000..00003}.tar')
    )
    dataset.batch_size = 2
    dataset.set_epoch(3)
    full = [_read(dataset, 0, 1, w, 2, monkeypatch) for w in range(2)]
    dataset.skip_batches(3)  # batches 0, 2 of worker 0 and 1 of worker 1
    rest = [_read(dataset, 0, 1, w, 2, monkeypatch) for w in range(2)]
    # the DataLoader asks worker 0 first: it continues with batch 3 (what
    # worker 1 read in the full pass), worker 1 with batch 4
    assert rest == [full[1][2:], full[0][4:]]
    dataset.set_epoch(4)  # a new epoch starts from its beginning again
    assert len(_read(dataset, 0, 1, 0, 2, monkeypatch)) == 8


def _bad_shards(root):
    """Shard 0: 1 corrupt jpg, 1 empty caption, 1 missing txt, 3 good;
    shard 1: 4 good then truncated in the middle of the 5th sample."""
    good = _samples('g', 7)
    shard0 = str(root / '00000.tar')
    with tarfile.open(shard0, 'w') as tar:
        members = [
            ('g0000.jpg', good[0]['jpg']),
            ('g0000.txt', b'a good one'),
            ('bad1.jpg', b'not a jpeg at all'),
            ('bad1.txt', b'a corrupt image'),
            ('bad2.jpg', good[1]['jpg']),
            ('bad2.txt', b'  \n\t '),
            ('bad3.jpg', good[2]['jpg']),
            ('g0001.jpg', good[3]['jpg']),
            ('g0001.txt', b'another good one'),
            ('g0002.jpg', good[4]['jpg']),
            ('g0002.txt', b'&amp; a third'),
        ]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    shard1 = write_shards(
        _samples('t', 5), str(root / 'tmp'), samples_per_shard=5
    )[0]
    data = open(shard1, 'rb').read()
    # cut inside the 5th sample's jpg member
    cut = data.rindex(b't0004.jpg') + 700
    with open(root / '00001.tar', 'wb') as file:
        file.write(data[:cut])
    # the statistics file of the whole shard, as a download leaves it
    os.replace(stats_path(shard1), stats_path(str(root / '00001.tar')))
    return shard0, str(root / '00001.tar')


def test_each_kind_of_bad_sample_is_skipped_and_counted(tmp_path, caplog):
    shard0, shard1 = _bad_shards(tmp_path)
    dataset = WebDatasetImageText(
        epoch_size=7,
        shards=str(tmp_path / '{00000..00001}.tar'),
        shuffle_shards=False,
        max_skip_ratio=1.0,
        pipeline=PACK,
    )
    samples = list(dataset)
    captions = sorted(s['data_samples'].metainfo['caption'] for s in samples)
    assert captions == sorted(
        ['a good one', 'another good one', '& a third']
        + [f'a t {i}' for i in range(4)]
    )
    counts = dataset.skip_counts()
    assert counts['good'] == 7
    assert {r: n for r, n in counts['reasons'].items() if n} == {
        'corrupt_image': 1,
        'empty_caption': 1,
        'missing_caption': 1,
        'bad_shard': 1,
    }
    assert counts['shards'] == {
        shard0: dict(corrupt_image=1, empty_caption=1, missing_caption=1),
        shard1: dict(bad_shard=1),
    }
    report = check_shard(shard1)
    assert (report.samples, report.good, report.ok) == (4, 4, False)
    assert 'ReadError' in report.error


def test_skip_ratio_error_names_the_shard(tmp_path):
    shard0, _ = _bad_shards(tmp_path)
    dataset = WebDatasetImageText(
        epoch_size=3,
        shards=shard0,
        max_skip_ratio=0.2,
        min_samples_for_check=4,
    )
    with pytest.raises(RuntimeError, match=f'worst shard: {shard0}'):
        list(dataset)


def test_loading_step_is_dropped_and_images_are_bgr_arrays(tmp_path):
    img = np.zeros((6, 10, 3), np.uint8)
    img[..., 2] = 255  # red in BGR
    write_shards(
        [dict(key='k', jpg=encode_jpeg(img), txt='red')], str(tmp_path)
    )
    dataset = WebDatasetImageText(
        epoch_size=1,
        shards=str(tmp_path / '00000.tar'),
        pipeline=[dict(type='LoadImageOrSkip')],
    )
    (sample,) = list(dataset)
    assert sample['img'].shape == (6, 10, 3)
    assert sample['img'].dtype == np.uint8
    assert sample['img'][..., 2].min() > 200 > sample['img'][..., 0].max()
    assert sample['img_path'] == str(tmp_path / '00000.tar') + '/k.jpg'


def test_shards_with_pax_headers_read_as_ours(tmp_path):
    """img2dataset's shards (webdataset's writer, float member times: a pax
    header before every member) give the samples write_shards' ustar
    shards give."""
    import webdataset as wds

    samples = _samples('p', 6)
    ours = _write(tmp_path / 'ours', 'p', 1, 6)[0]
    theirs = str(tmp_path / 'theirs.tar')
    with wds.TarWriter(theirs, mtime=1700000000.25) as writer:
        for s in samples:
            writer.write(
                {'__key__': s['key'], 'jpg': s['jpg'], 'txt': s['txt']}
            )
    with tarfile.open(theirs) as tar:
        assert all(m.pax_headers for m in tar.getmembers())
    with tarfile.open(ours) as tar:
        assert not any(m.pax_headers for m in tar.getmembers())

    def read(path):
        dataset = WebDatasetImageText(epoch_size=6, shards=path, pipeline=[])
        return [(s['key'], s['caption'], s['img'].tobytes()) for s in dataset]

    assert read(theirs) == read(ours)
    assert [r[1] for r in read(ours)] == [s['txt'] for s in samples]


def test_runner_dataloader_with_two_workers_yields_captioned_batches(
    tmp_path,
):
    from mmengine.runner import Runner

    _write(tmp_path, '', 4, 6)
    dataset = dict(
        type='WebDatasetImageText',
        shards='{00000..00003}.tar',
        data_root=str(tmp_path),
        epoch_size=22,
        batch_size=4,
        pipeline=PACK,
    )
    loader = Runner.build_dataloader(
        dict(
            batch_size=4,
            num_workers=2,
            sampler=None,
            collate_fn=dict(type='pseudo_collate'),
            dataset=dataset,
        ),
        seed=0,
    )
    batches = list(loader)
    assert len(batches) == len(loader) == 6
    assert [len(b['inputs']) for b in batches] == [4, 4, 4, 4, 4, 2]
    captions = [
        s.metainfo['caption'] for b in batches for s in b['data_samples']
    ]
    assert len(set(captions)) == 22
    assert all(c.startswith('a  ') or c.startswith('a ') for c in captions)


@pytest.mark.slow
def test_runner_logs_skip_counts_with_two_workers(tmp_path):
    import torch
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Tiny(BaseModel):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, inputs, data_samples=None, mode='loss'):
            return dict(loss=self.w.sum() * 0 + self.w.square().sum())

    _bad_shards(tmp_path)
    _write(tmp_path / 'more', '', 4, 4)
    runner = Runner(
        model=Tiny(),
        work_dir=str(tmp_path / 'work'),
        train_dataloader=dict(
            batch_size=2,
            num_workers=2,
            persistent_workers=True,
            sampler=None,
            collate_fn=dict(type='pseudo_collate'),
            dataset=dict(
                type='WebDatasetImageText',
                sources=[
                    dict(shards=str(tmp_path / '{00000..00001}.tar')),
                    dict(shards=str(tmp_path / 'more/{00000..00003}.tar')),
                ],
                epoch_size=12,
                max_skip_ratio=0.5,
                pipeline=PACK,
            ),
        ),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        custom_hooks=[dict(type='ShardedDataHook', interval=2)],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1)),
        log_level='INFO',
        default_scope='mmseg',
    )
    runner.train()
    assert runner.iter == 12
    log = open(osp.join(runner.log_dir, f'{runner.timestamp}.log')).read()
    assert 'shard data:' in log
    assert 'skipped (' in log and 'corrupt_image' in log
    assert 'worst shards: ' + str(tmp_path / '00000.tar') in log


@pytest.mark.slow
def test_pack_then_summarize_round_trip(tmp_path):
    img_dir = tmp_path / 'images'
    img_dir.mkdir()
    rows = ['image\tcaption']
    for i in range(5):
        (img_dir / f'{i}.jpg').write_bytes(_jpeg(i))
        rows.append(f'{i}.jpg\tcaption number {i}')
    rows.append('5.jpg\t   ')  # empty caption: skipped by the reader
    (tmp_path / 'ann.tsv').write_text('\n'.join(rows) + '\n')
    tools = osp.join(REPO_ROOT, 'tools/dataset_converters')
    out = tmp_path / 'shards'
    result = run_python(
        [
            osp.join(tools, 'pack_image_text_shards.py'),
            str(tmp_path / 'ann.tsv'),
            str(img_dir),
            str(out),
            '--samples-per-shard',
            '2',
            '--max-skip-ratio',
            '0.5',
        ]
    )
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(out)) == [
        f'0000{i}{ext}' for i in range(3) for ext in ('.tar', '_stats.json')
    ]
    result = run_python(
        [osp.join(tools, 'summarize_shards.py'), str(out / '{0000..0002}.tar')]
    )
    assert result.returncode == 1  # the pattern misses the shards
    result = run_python(
        [
            osp.join(tools, 'summarize_shards.py'),
            str(out / '{00000..00002}.tar'),
        ]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-2].split()[1:3] == ['5', '5']
    _bad_shards(tmp_path)
    result = run_python(
        [osp.join(tools, 'summarize_shards.py'), str(tmp_path / '00001.tar')]
    )
    assert result.returncode == 1 and 'ReadError' in result.stdout
    # 4 samples read and good; 1 lost of the 5 its statistics file counts
    row = result.stdout.splitlines()[2].split()
    assert row[1:8] == ['4', '4', '0', '0', '0', '0', '1']
