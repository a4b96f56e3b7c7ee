"""The benchmark scripts of tools/benchmark/ on their tiniest settings:
the tables they print and write with ``--out`` (rows, columns, numbers)."""

import importlib
import os.path as osp
import sys

import pytest
import torch

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
BENCHMARK_DIR = osp.join(REPO_ROOT, 'tools', 'benchmark')


@pytest.fixture(scope='module')
def bench():
    """Imports a script of tools/benchmark/ by name (their folder is on
    ``sys.path`` when they run: they import ``_common``)."""
    sys.path.insert(0, BENCHMARK_DIR)
    try:
        yield importlib.import_module
    finally:
        sys.path.remove(BENCHMARK_DIR)


@pytest.fixture
def one_thread():
    """One intra-op thread: tiny models on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def read_table(path):
    """(command line, header, rows) of a file written with ``--out``."""
    with open(path, encoding='utf-8') as f:
        lines = f.read().splitlines()
    assert lines[0] == '```bash' and lines[2] == '```', lines[:3]
    table = [line for line in lines if line.startswith('|')]
    split = [[c.strip() for c in line.strip('|').split('|')] for line in table]
    assert set(table[1]) == set('|-'), table[1]
    for row in split[2:]:
        assert len(row) == len(split[0]), row
    return lines[1], split[0], split[2:]


def positive(cell: str) -> bool:
    return float(cell.rstrip('Mx')) > 0


@pytest.mark.slow
def test_peak_memory_table_in_one_process(bench, one_thread, tmp_path):
    peak_memory = bench('peak_memory')
    out = str(tmp_path / 'peak.md')
    argv = ['--tiny', '--in-process', '--batch-size', '2', '--bf16']
    argv += ['--device', 'cpu', '--out', out]
    rows = peak_memory.main(argv)

    command, header, table = read_table(out)
    assert command == 'python tools/benchmark/peak_memory.py ' + ' '.join(argv)
    assert header == [
        'model',
        'precision',
        'params',
        'build (MiB)',
        'step peak (MiB)',
        'build + step (MiB)',
        'step peak vs groupvit',
        'build + step vs groupvit',
    ]
    assert [r[:2] for r in table] == [
        ['groupvit', 'fp32'],
        ['mixreorg', 'fp32'],
        ['groupvit', 'bf16'],
        ['mixreorg', 'bf16'],
    ]
    # the mixer's parameters (the progressive-mixing block) come on top
    assert rows[1]['params'] > rows[0]['params'] > 0
    assert all(r[6] == r[7] == '1.00x' for r in table[::2])
    # in one process, later rows reuse memory earlier ones freed: only
    # non-negative sizes are certain
    for row in table:
        assert all(float(c) >= 0 for c in row[3:6]), row
        build, step, total = (float(c) for c in row[3:6])
        assert abs(total - build - step) <= 0.11  # rounded to 0.1 MiB


@pytest.mark.slow  # a fresh process per row
def test_peak_memory_measures_each_model_in_a_fresh_process(
    bench, tmp_path, monkeypatch
):
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    peak_memory = bench('peak_memory')
    out = str(tmp_path / 'peak.md')
    rows = peak_memory.main(
        ['--tiny', '--batch-size', '2', '--device', 'cpu', '--out', out]
    )
    _, header, table = read_table(out)
    assert len(header) == 8
    assert [r[:2] for r in table] == [
        ['groupvit', 'fp32'],
        ['mixreorg', 'fp32'],
    ]
    for row in table:
        assert all(positive(c) for c in row[2:]), row
    for row in rows:
        assert row['build'] > 4 * row['params']  # fp32 weights at least
        assert row['total'] == row['build'] + row['step_peak']


def test_zero_shot_latency_table(bench, one_thread, tmp_path):
    zero_shot_latency = bench('zero_shot_latency')
    out = str(tmp_path / 'latency.md')
    argv = ['--tiny', '--bf16', '--warmup', '1', '--runs', '2']
    argv += ['--device', 'cpu', '--out', out]
    rows = zero_shot_latency.main(argv)

    command, header, table = read_table(out)
    assert command.startswith('python tools/benchmark/zero_shot_latency.py')
    assert header == [
        'mode',
        'precision',
        'input',
        'windows',
        'text embeddings (s, once)',
        'first call (s)',
        's / image',
        'images / s',
        'speed vs fp32',
    ]
    # the tiny model's window is its 64 px training size, stride 32:
    # 64 x 128 takes 3 windows
    assert [r[:4] for r in table] == [
        ['whole', 'fp32', '64x64', '1'],
        ['slide', 'fp32', '64x128', '3'],
        ['whole', 'bf16', '64x64', '1'],
        ['slide', 'bf16', '64x128', '3'],
    ]
    for row in table:
        assert all(positive(c) for c in row[4:]), row
    assert table[0][8] == table[1][8] == '1.00x'
    # VOC's classes (the toy folder config names none): 20 prompted
    with open(out, encoding='utf-8') as f:
        assert '21 classes' in f.read()
    assert all(r['latency'] > 0 and r['text'] > 0 for r in rows)


def test_num_windows_matches_mmseg_slide_inference(bench):
    zero_shot_latency = bench('zero_shot_latency')
    # the paper's protocol: crop 448, stride 224
    assert (
        zero_shot_latency.num_windows((448, 448), (448,) * 2, (224,) * 2) == 1
    )
    assert (
        zero_shot_latency.num_windows((448, 896), (448,) * 2, (224,) * 2) == 3
    )
    assert (
        zero_shot_latency.num_windows((448, 600), (448,) * 2, (224,) * 2) == 2
    )
    assert (
        zero_shot_latency.num_windows((300, 300), (448,) * 2, (224,) * 2) == 1
    )


@pytest.fixture(scope='module')
def tiny_world(tmp_path_factory):
    """A synthetic world of 48 pairs at 32 px in 3 shards."""
    from mixreorg_mmseg.datasets import write_synthetic_world

    root = str(tmp_path_factory.mktemp('tiny_world'))
    return write_synthetic_world(
        root, num_train=48, num_val=0, image_size=32, samples_per_shard=16
    )


def test_data_loading_table_from_given_shards(bench, tiny_world, tmp_path):
    data_loading = bench('data_loading')
    out = str(tmp_path / 'loading.md')
    argv = ['--tiny', '--shards', tiny_world['root'], '--workers', '0']
    argv += ['--batch-size', '8', '--batches', '3']
    argv += ['--model-img-per-s', '1e9', '--out', out]
    rows = data_loading.main(argv)

    command, header, table = read_table(out)
    assert command.startswith('python tools/benchmark/data_loading.py')
    assert header == [
        'workers',
        'batch',
        'batches timed',
        'first batches (s)',
        'images / s',
        'per worker',
        'images / CPU s',
        'model images / s',
        'data / model',
        'model waits',
    ]
    assert len(table) == 1
    assert table[0][:3] == ['0', '8', '3']
    assert positive(table[0][4]) and table[0][5] == table[0][4]
    assert positive(table[0][6])  # CPU seconds from /proc
    assert table[0][9] == 'yes'  # no loader feeds 1e9 images/s
    assert rows[0]['images'] == 3 * 8


def test_data_loading_writes_a_temporary_world(bench, tmp_path):
    data_loading = bench('data_loading')
    out = str(tmp_path / 'loading.md')
    rows = data_loading.main(
        [
            '--tiny',
            '--workers',
            '0',
            '--batch-size',
            '4',
            '--batches',
            '1',
            '--num-samples',
            '12',
            '--world-image-size',
            '32',
            '--out',
            out,
        ]
    )
    _, header, table = read_table(out)
    assert header[-1] == 'images / CPU s'  # no model to compare with
    assert table[0][:3] == ['0', '4', '1'] and positive(table[0][4])
    assert rows[0]['images'] == 4
    with open(out, encoding='utf-8') as f:
        assert 'temporary synthetic world (12 samples, 32 px' in f.read()


def test_data_loading_gpu_decode_on_photo_like_shards(bench, tmp_path):
    # the GPU-decode path timed on the CPU: workers keep the JPEG bytes,
    # the data preprocessor decodes and augments each batch
    data_loading = bench('data_loading')
    out = str(tmp_path / 'loading.md')
    argv = ['--gpu-decode', '--device', 'cpu', '--photo-like']
    argv += ['--side', '48', '--unique-images', '3', '--num-samples', '8']
    argv += ['--workers', '0', '--batch-size', '4', '--batches', '1']
    rows = data_loading.main(argv + ['--out', out])
    assert rows[0]['images'] == 4
    with open(out, encoding='utf-8') as f:
        text = f.read()
    assert 'groupvit_vit-s_cc12m_gpu-decode.py' in text
    assert '8 samples of 3 distinct images, 48 px JPEG q95' in text
    assert 'decoded and augmented on cpu by GPUDecodeSegDataPreProcessor' in (
        text
    )


def test_photo_like_jpegs_are_heavier_than_flat_ones(bench):
    photo_like = bench('photo_like')
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    flat = np.full((128, 128, 3), 90, np.uint8)
    cv2.circle(flat, (64, 64), 30, (20, 200, 40), -1)
    photo = photo_like.photo_like_image(rng, 128)
    assert photo.shape == (128, 128, 3) and photo.dtype == np.uint8
    sizes = [len(cv2.imencode('.jpg', x)[1]) for x in (flat, photo)]
    assert sizes[1] > 3 * sizes[0]


def test_photo_like_compares_with_given_photos(bench, tmp_path):
    photo_like = bench('photo_like')
    import cv2
    import numpy as np

    photo = str(tmp_path / 'photo.png')
    cv2.imwrite(photo, np.full((40, 60, 3), 128, np.uint8))
    rows = photo_like.main(['--side', '32', '--num', '2', '--photos', photo])
    assert [row[:2] for row in rows] == [
        [32, 'photo-like (2)'],
        [32, 'photos (1)'],
    ]
    assert all(kb > 0 and ms > 0 for *_, kb, ms in rows)


def test_find_shards_takes_folders_and_patterns(bench, tiny_world):
    data_loading = bench('data_loading')
    shards = tiny_world['shards']
    assert len(shards) == 3
    root = tiny_world['root']
    assert data_loading.find_shards(root) == shards  # world root: shards/
    assert data_loading.find_shards(osp.dirname(shards[0])) == shards
    assert data_loading.find_shards(osp.join(root, 'shards/*.tar')) == shards
    assert data_loading.find_shards(tiny_world['shard_pattern']) == shards
    with pytest.raises(FileNotFoundError, match='no shard matches'):
        data_loading.find_shards(osp.join(root, 'none/*.tar'))


def test_train_speed_times_a_step_with_the_shared_helper(bench, one_thread):
    train_speed = bench('train_speed')
    common = bench('_common')
    config = common.repo_path(common.TINY_TRAIN_CONFIGS['mixreorg'])
    params, img_per_s = train_speed.ours(config, 2, 1, False)
    assert params > 0 and img_per_s > 0


def read_tables(path):
    """(command line, [(header, rows), ...]) of a file written with
    ``--out`` holding several tables (separated by other lines)."""
    with open(path, encoding='utf-8') as f:
        lines = f.read().splitlines()
    assert lines[0] == '```bash' and lines[2] == '```', lines[:3]
    tables, current = [], []
    for line in [*lines[3:], '']:
        if line.startswith('|'):
            current.append([c.strip() for c in line.strip('|').split('|')])
        elif current:
            tables.append(current)
            current = []
    for table in tables:
        assert set(''.join(table[1])) == {'-'}, table[1]
        for row in table[2:]:
            assert len(row) == len(table[0]), row
    return lines[1], [(t[0], t[2:]) for t in tables]


@pytest.mark.slow
def test_train_speed_table_with_flops_and_matmul_peak(
    bench, one_thread, tmp_path
):
    train_speed = bench('train_speed')
    out = str(tmp_path / 'speed.md')
    argv = ['--tiny', '--batch', '2', '--steps', '1', '--matmul-size', '256']
    argv += ['--device', 'cpu', '--out', out]
    rows = train_speed.main(argv)

    command, tables = read_tables(out)
    assert command == 'python tools/benchmark/train_speed.py ' + ' '.join(argv)
    (header, table), (forward_header, forward) = tables
    assert header == [
        'model',
        'precision',
        'params',
        'img/s',
        'vs first',
        'vs official',
        'GFLOP / step',
        'GFLOP/s',
        'MFU (of matmul peak)',
    ]
    groupvit = 'groupvit_tiny_toy-captions-64x64.py'
    mixreorg = 'mixreorg_tiny_toy-captions-64x64.py'
    assert [r[:2] for r in table] == [
        [groupvit, 'fp32'],
        [mixreorg, 'fp32'],
        [groupvit, 'bf16'],
        [mixreorg, 'bf16'],
    ]
    for row in table:
        assert all(positive(c) for c in row[2:5]), row
        assert row[5] == 'n/a'  # no official model
        assert all(positive(c) for c in row[6:9]), row
    assert table[0][4] == table[2][4] == '1.00x'
    # the same batch in both precisions: the same FLOPs; MixReorg's
    # stages after the mixing point run for three branches
    assert table[0][6] == table[2][6] and table[1][6] == table[3][6]
    assert float(table[1][6]) > float(table[0][6])
    with open(out, encoding='utf-8') as f:
        text = f.read()
    assert 'batch 2 at 64x64' in text
    assert 'a 256x256 matmul' in text and 'AdamW update' in text
    for row in rows:
        assert row['flops'] > 0 and row['seconds'] > 0
        assert row['flop_per_s'] == pytest.approx(
            row['flops'] / row['seconds']
        )
        # no arithmetic bound above: on a CPU without bf16 units a bf16
        # matmul runs slower than the step's ops that autocast keeps in fp32
        assert row['matmul_peak'] > 0
        assert row['peak_fraction'] == pytest.approx(
            row['flop_per_s'] / row['matmul_peak']
        )
    # the image encoder's forward at twice the training size
    assert forward_header == ['model', 'precision', 'seconds', 'vs official']
    assert [r[:2] for r in forward] == [
        ['ours (GroupViT backbone)', 'fp32'],
        ['ours (GroupViT backbone)', 'bf16'],
    ]
    assert 'batch 1 at 128x128' in text


def test_train_speed_counts_matmuls_and_cpu_attention(bench, one_thread):
    train_speed = bench('train_speed')
    torch.manual_seed(0)
    linear = torch.nn.Linear(8, 4, bias=False)
    x = torch.randn(3, 8, requires_grad=True)
    flops = train_speed.step_flops(lambda: linear(x).sum().backward())
    # forward 2 * 3 * 8 * 4, backward twice that (input and weight grads)
    assert flops == 3 * (2 * 3 * 8 * 4)

    q = torch.randn(1, 2, 16, 8, requires_grad=True)
    attention = torch.nn.functional.scaled_dot_product_attention
    # on CPU the fused kernel is one torch's FLOP table misses: two
    # batched matmuls forward, 2 * 2 * 16 * 16 * 8 FLOPs each
    forward = 2 * (2 * 2 * 16 * 16 * 8)
    assert train_speed.step_flops(lambda: attention(q, q, q)) == forward
    assert (
        train_speed.step_flops(lambda: attention(q, q, q).sum().backward())
        > 3 * forward
    )


def test_matmul_peak_is_flop_per_second(bench, one_thread):
    train_speed = bench('train_speed')
    for dtype in (torch.float32, torch.bfloat16):
        peak = train_speed.matmul_peak(64, dtype, 'cpu', runs=3, warmup=1)
        assert 1e6 < peak < 1e15  # FLOP/s, not GFLOP/s or seconds


def test_train_speed_refuses_the_official_model_with_tiny(bench):
    train_speed = bench('train_speed')
    with pytest.raises(SystemExit):
        train_speed.parse_args(
            ['--tiny', '--anchor', 'a.py', '--official-git-dir', 'g']
        )


def test_caption_tokens_times_the_three_ways(bench, one_thread, tmp_path):
    caption_tokens = bench('caption_tokens')
    out = str(tmp_path / 'text.md')
    caption_tokens.main(['--batch', '4', '--repeats', '1', '--out', out])
    _, header, table = read_table(out)
    assert header == ['where', 'ms per batch', 'us per caption']
    assert [row[0] for row in table] == [
        'in the model (main process)',
        'in the pipeline (B samples, workers)',
        'left on the main process with pipeline tokens',
    ]
    assert all(positive(row[1]) for row in table)


def test_cc12m_like_captions_are_seeded_sentences_with_nouns(bench):
    caption_tokens = bench('caption_tokens')
    first = caption_tokens.cc12m_like_captions(8, seed=3)
    assert first == caption_tokens.cc12m_like_captions(8, seed=3)
    assert all(8 <= len(c.split()) <= 25 for c in first)


def test_train_speed_times_the_official_model_on_any_device(bench):
    train_speed = bench('train_speed')
    anchor = ['--anchor', 'a.py', '--official-git-dir', 'g']
    args = train_speed.parse_args([*anchor, '--device', 'cuda'])
    assert args.device == 'cuda'
    assert train_speed.device_name('cpu') == ''


def test_train_step_takes_pipeline_tokens_or_strings(bench, one_thread):
    common = bench('_common')
    config = common.repo_path(common.TINY_TRAIN_CONFIGS['groupvit'])
    checked = []
    for text_in_model in (False, True):
        model, step = common.train_step(
            config, 2, text_in_model=text_in_model
        )
        step()
        checked.append(model.pipeline_tokens_checked)
    assert checked == [True, False]  # tokens from the pipeline, or not
