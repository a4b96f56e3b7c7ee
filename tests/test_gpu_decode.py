"""The GPU-decode data path (``LoadJpegBytes``, ``PackJpegInputs``,
``GPUDecodeSegDataPreProcessor``), run on the CPU: batches, bad JPEGs, and
its augmentation against the CPU pipeline's mmpretrain transforms, draw
by draw (statistics with tolerances from the sample size) and op by op
(the same image, the same parameter)."""

import math
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate

from mixreorg_mmseg.datasets import encode_jpeg
from mixreorg_mmseg.models.data_preprocessors import (
    GPUDecodeSegDataPreProcessor,
    JpegDecodeError,
)
from mixreorg_mmseg.models.data_preprocessors import batch_augment as aug
from tests.conftest import REPO_ROOT

CONFIG = osp.join(REPO_ROOT, 'configs/groupvit_vit-s_cc12m_gpu-decode.py')
CPU_BASE = osp.join(
    REPO_ROOT, 'configs/_base_/datasets/cc12m_image_captions.py'
)
DRAWS = 400


@pytest.fixture(scope='module')
def cfg():
    from mmseg.utils import register_all_modules

    register_all_modules()
    return Config.fromfile(CONFIG)


@pytest.fixture(scope='module')
def cpu_steps():
    """The CPU pipeline's transforms, built from its config, by name."""
    from mmseg.registry import TRANSFORMS
    from mmseg.utils import register_all_modules

    register_all_modules()
    steps = {}
    for step in Config.fromfile(CPU_BASE).train_pipeline[1:-2]:
        name = step['type'].split('.')[-1]
        steps[name] = TRANSFORMS.build(step)
    return steps


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 RGB: smooth gradients, a disc and noise (every op
    has something to change)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    base = np.stack([200 * xx, 180 * yy, 120 * (1 - xx * yy)], -1) + 20
    disc = (xx - 0.6) ** 2 + (yy - 0.4) ** 2 < 0.05
    base[disc] = [230, 60, 40]
    base += rng.normal(0, 12, base.shape)
    return np.clip(base, 0, 255).astype(np.uint8)


def jpeg(rgb: np.ndarray) -> bytes:
    return encode_jpeg(np.ascontiguousarray(rgb[..., ::-1]))


def binomial_tolerance(p: float, n: int) -> float:
    """5 standard errors of the difference of two rates of n draws."""
    return 5 * math.sqrt(2 * p * (1 - p) / n)


def mean_tolerance(a: np.ndarray, b: np.ndarray) -> float:
    """5 standard errors of the difference of two sample means."""
    return 5 * math.sqrt(a.var() / len(a) + b.var() / len(b))


# -- the path end to end -----------------------------------------------------


def test_gpu_decode_config_differs_from_the_cpu_one_only_in_the_data_path(
    cfg,
):
    # the base repeats image_text_shards.py's shard settings: they must
    # stay the same
    cpu = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/groupvit_vit-s_cc12m.py')
    )
    gpu_data, cpu_data = cfg.train_dataloader, cpu.train_dataloader
    assert {**gpu_data.dataset, 'pipeline': None, 'decode_images': True} == {
        **cpu_data.dataset,
        'pipeline': None,
        'decode_images': True,
    }
    assert {**gpu_data, 'dataset': None, 'collate_fn': None} == {
        **cpu_data,
        'dataset': None,
        'collate_fn': None,
    }
    assert cfg.custom_hooks == cpu.custom_hooks
    gpu_model = {**cfg.model, 'data_preprocessor': None}
    assert gpu_model == {**cpu.model, 'data_preprocessor': None}
    assert cfg.model.data_preprocessor.type == 'GPUDecodeSegDataPreProcessor'
    policies = cfg.model.data_preprocessor.rand_augment.policies
    cpu_steps = {s['type']: s for s in cpu.train_dataloader.dataset.pipeline}
    assert policies == cpu_steps['mmpretrain.RandAugment']['policies']


def test_gpu_decode_batch_is_normalised_at_224(cfg, one_thread):
    from mmseg.registry import MODELS

    pipeline = Compose(cfg.train_dataloader.dataset.pipeline)
    samples = [
        pipeline(
            dict(
                img_bytes=jpeg(textured(180 + 20 * i, 240, seed=i)),
                img_path=f'shard/{i:05d}.jpg',
                caption='a brown dog running on the beach',
            )
        )
        for i in range(6)
    ]
    assert samples[0]['inputs'].dim() == 1
    assert samples[0]['inputs'].dtype == torch.uint8
    torch.manual_seed(0)
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    out = preprocessor(pseudo_collate(samples), training=True)
    assert out['inputs'].shape == (6, 3, 224, 224)
    assert out['inputs'].dtype == torch.float32
    # normalised with ImageNet statistics: values of a few units
    assert -3 < out['inputs'].mean() < 3 and out['inputs'].abs().max() < 3
    meta = out['data_samples'][0].metainfo
    assert tuple(meta['img_shape']) == (224, 224)
    assert meta['caption_tokens'].shape == (77,)
    assert meta['img_path'] == 'shard/00000.jpg'


def test_packed_batch_gives_what_the_unpacked_one_gives(cfg, one_thread):
    from mmengine.registry import FUNCTIONS
    from mmseg.registry import MODELS

    pipeline = Compose(cfg.train_dataloader.dataset.pipeline)
    collate = FUNCTIONS.get(cfg.train_dataloader.collate_fn['type'])
    captions = ['a red car on a road', 'two dogs', 'a bowl of fruit']

    def samples():
        torch.manual_seed(1)  # the same template draws for both
        return [
            pipeline(
                dict(
                    img_bytes=jpeg(textured(64, 80, seed=i)),
                    img_path=f'shard/{i}.jpg',
                    caption=caption,
                )
            )
            for i, caption in enumerate(captions)
        ]

    packed, unpacked = collate(samples()), pseudo_collate(samples())
    assert set(packed['inputs']) == {'jpeg', 'offsets'}
    assert packed['packed_metainfo']['caption_tokens'].shape == (3, 77)
    assert 'caption_tokens' not in packed['data_samples'][0].metainfo
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    torch.manual_seed(0)
    out = preprocessor(packed, training=True)
    torch.manual_seed(0)
    ref = preprocessor(unpacked, training=True)
    torch.testing.assert_close(out['inputs'], ref['inputs'])
    for a, b in zip(out['data_samples'], ref['data_samples'], strict=True):
        for key in ('caption_tokens', 'prompt_tokens', 'prompt_valid'):
            torch.testing.assert_close(a.metainfo[key], b.metainfo[key])


def test_augmentation_ignores_the_training_steps_autocast(cfg, one_thread):
    # MMEngine calls the data preprocessor inside the optimizer wrapper's
    # autocast; bf16 pixel arithmetic would move grey levels
    from mmseg.registry import MODELS

    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    blob = bytearray(jpeg(textured(60, 70)))
    data = torch.frombuffer(blob, dtype=torch.uint8)
    torch.manual_seed(0)
    ref = preprocessor(dict(inputs=[data] * 4), training=True)['inputs']
    torch.manual_seed(0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = preprocessor(dict(inputs=[data] * 4), training=True)['inputs']
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref)


def test_decoded_images_still_go_through_seg_data_preprocessor(cfg):
    from mmseg.registry import MODELS

    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    bgr = torch.from_numpy(textured(32, 48)[..., ::-1].copy()).permute(2, 0, 1)
    out = preprocessor(dict(inputs=[bgr]), training=False)
    rgb = bgr[[2, 1, 0]].float()
    expected = (rgb - preprocessor.mean) / preprocessor.std
    torch.testing.assert_close(out['inputs'][0], expected)


def test_webdataset_keeps_jpeg_bytes_and_counts_a_non_jpeg(cfg, tmp_path):
    from mixreorg_mmseg.datasets import WebDatasetImageText, write_shards

    good = [
        dict(key=f'k{i}', jpg=jpeg(textured(40, 40, i)), txt='a red car')
        for i in range(5)
    ]
    bad = dict(key='bad', jpg=b'not an image at all', txt='a blue car')
    shards = write_shards([*good[:2], bad, *good[2:]], str(tmp_path), 100)
    dataset = WebDatasetImageText(
        epoch_size=5,
        shards=shards,
        pipeline=cfg.train_dataloader.dataset.pipeline,
        shuffle_shards=False,
        decode_images=False,
    )
    samples = list(dataset)
    assert len(samples) == 5
    assert all(s['inputs'].dim() == 1 for s in samples)
    assert dataset.skip_counts()['reasons']['pipeline'] == 1


def test_corrupt_jpeg_is_skipped_and_named(cfg, caplog):
    preprocessor = GPUDecodeSegDataPreProcessor(
        mean=[0, 0, 0], std=[1, 1, 1], size=(32, 32)
    )
    good = jpeg(textured(48, 48))
    cut = good[: len(good) // 3]  # a valid header, the data cut short
    from mmseg.structures import SegDataSample

    samples = []
    for key in ('a', 'cut', 'b'):
        sample = SegDataSample()
        sample.set_metainfo(dict(img_path=f'shard.tar/{key}.jpg'))
        samples.append(sample)
    inputs = [
        torch.frombuffer(bytearray(b), dtype=torch.uint8)
        for b in (good, cut, good)
    ]
    out = preprocessor(dict(inputs=inputs, data_samples=samples), True)
    assert out['inputs'].shape == (2, 3, 32, 32)
    assert [s.img_path for s in out['data_samples']] == [
        'shard.tar/a.jpg',
        'shard.tar/b.jpg',
    ]
    assert preprocessor.skipped_files == ['shard.tar/cut.jpg']
    with pytest.raises(JpegDecodeError, match='shard.tar/cut.jpg'):
        preprocessor(dict(inputs=[inputs[1]], data_samples=[samples[1]]))


def test_load_jpeg_bytes_skips_a_non_jpeg_with_its_path():
    from mixreorg_mmseg.datasets import LoadJpegBytes

    step = LoadJpegBytes()
    png = mmcv.imfrombytes(jpeg(textured(8, 8)))
    import cv2

    ok, data = cv2.imencode('.png', png)
    assert step(dict(img_bytes=data.tobytes(), img_path='x/1.png')) is None
    assert step(dict(img_bytes=b'\xff\xd8junk', img_path='x/2.jpg')) is None
    assert step.skipped_files == ['x/1.png', 'x/2.jpg']
    out = step(dict(img_bytes=jpeg(textured(8, 12)), img_path='x/3.jpg'))
    assert out['img_shape'] == (8, 12)


# -- the draws against the CPU pipeline's ------------------------------------


def test_crop_area_and_aspect_match_random_resized_crop(cpu_steps):
    crop = cpu_steps['RandomResizedCrop']
    for height, width in ((256, 256), (240, 400), (60, 400)):
        img = np.zeros((height, width, 3), np.uint8)
        np.random.seed(0)
        cpu = np.array([crop.rand_crop_params(img) for _ in range(DRAWS)])
        torch.manual_seed(0)
        gpu = aug.draw_crop_boxes(
            torch.full((DRAWS,), height), torch.full((DRAWS,), width)
        ).numpy()
        for boxes in (cpu, gpu):
            top, left, h, w = boxes.T
            assert (top >= 0).all() and (top + h <= height).all()
            assert (left >= 0).all() and (left + w <= width).all()
        area = [b[:, 2] * b[:, 3] / (height * width) for b in (cpu, gpu)]
        aspect = [np.log(b[:, 3] / b[:, 2]) for b in (cpu, gpu)]
        assert abs(area[0].mean() - area[1].mean()) < mean_tolerance(*area)
        assert abs(aspect[0].mean() - aspect[1].mean()) < mean_tolerance(
            *aspect
        )
        assert abs(area[0].std() - area[1].std()) < 0.2 * area[0].std()
        for a in area:
            assert a.min() >= 0.08 * 0.9 and a.max() <= 1.0


def test_flip_rate_matches_random_flip(cpu_steps, one_thread):
    from mmcv.transforms import RandomFlip

    np.random.seed(0)
    cpu_flip = RandomFlip(prob=0.5)
    img = np.zeros((4, 4, 3), np.uint8)
    cpu = np.mean([cpu_flip(dict(img=img))['flip'] for _ in range(DRAWS)])
    # the GPU path's flips, read off its output: everything else off, the
    # crop the whole image, one marked column
    preprocessor = GPUDecodeSegDataPreProcessor(
        size=(16, 16), crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0)
    )
    marked = np.zeros((16, 16, 3), np.uint8)
    marked[:, :4] = 255
    data = torch.frombuffer(bytearray(jpeg(marked)), dtype=torch.uint8)
    torch.manual_seed(0)
    out = preprocessor(dict(inputs=[data] * DRAWS), training=True)['inputs']
    flipped = out[:, :, :, -2:].mean((1, 2, 3)) > out[:, :, :, :2].mean(
        (1, 2, 3)
    )
    gpu = flipped.float().mean().item()
    assert abs(cpu - gpu) < binomial_tolerance(0.5, DRAWS)


def test_color_jitter_factors_match(cpu_steps):
    jitter = cpu_steps['ColorJitter']
    np.random.seed(0)
    cpu = [jitter._rand_params() for _ in range(DRAWS)]
    torch.manual_seed(0)
    gpu = aug.ColorJitterParams.draw(DRAWS, 0.4, 0.4, 0.4)
    for i, name in enumerate(('brightness', 'contrast', 'saturation')):
        a = np.array([p[1 + i] for p in cpu])
        b = getattr(gpu, name).numpy()
        for x in (a, b):
            assert x.min() >= 0.6 and x.max() <= 1.4
        assert abs(a.mean() - b.mean()) < mean_tolerance(a, b)
        assert abs(a.std() - b.std()) < 0.2 * a.std()
    # each op first in a quarter of the orders
    first_cpu = np.mean([p[0][0] == 0 for p in cpu])
    first_gpu = (gpu.order[:, 0] == 0).float().mean().item()
    assert abs(first_cpu - first_gpu) < binomial_tolerance(0.25, DRAWS)


def test_rand_augment_draws_match(cpu_steps):
    randaug = cpu_steps['RandAugment']
    np.random.seed(0)
    counts = np.zeros(len(randaug.transforms))
    applied, rotate = [], []
    for _ in range(DRAWS):
        for index in randaug.random_policy_indices():
            counts[index] += 1
            op = randaug.transforms[index]
            applied.append(not op.random_disable())
            if type(op).__name__ == 'Rotate':
                rotate.append(op.random_negative(op.random_magnitude()))
    fill = (104, 116, 124)
    policies = Config.fromfile(CPU_BASE)._randaug_policies
    ops = aug.parse_rand_augment_policies(policies, fill)
    assert [op['name'] for op in ops] == [
        type(t).__name__ for t in randaug.transforms
    ]
    torch.manual_seed(0)
    gpu = aug.RandAugmentParams.draw(DRAWS, ops, 2, 9, 0.5, 10)
    slots = 2 * DRAWS
    gpu_counts = np.bincount(gpu.ops.flatten().numpy(), minlength=len(ops))
    rate = 1 / len(ops)
    tol = binomial_tolerance(rate, slots)
    assert np.abs(counts / slots - gpu_counts / slots).max() < tol
    applied_gpu = gpu.applied.float().mean().item()
    assert abs(np.mean(applied) - applied_gpu) < binomial_tolerance(
        0.5, slots
    )
    rotate = np.array(rotate)
    rotate_gpu = gpu.magnitude[gpu.ops == 3].numpy()
    for r in (rotate, rotate_gpu):
        assert np.abs(r).max() <= 30 and (r < 0).any() and (r > 0).any()
    assert abs(np.abs(rotate).mean() - np.abs(rotate_gpu).mean()) < (
        mean_tolerance(np.abs(rotate), np.abs(rotate_gpu))
    )


def test_erasing_rate_and_area_match(cpu_steps):
    erase = cpu_steps['RandomErasing']
    np.random.seed(0)
    rate = np.mean([not erase.random_disable() for _ in range(DRAWS)])
    cpu = np.array([erase.random_patch(224, 224) for _ in range(DRAWS)])
    torch.manual_seed(0)
    gpu = aug.ErasingParams.draw(
        DRAWS, 224, 224, 0.25, 0.02, 1 / 3, (3 / 10, 10 / 3)
    )
    gpu_rate = gpu.erased.float().mean().item()
    assert abs(rate - gpu_rate) < binomial_tolerance(0.25, DRAWS)
    area = [
        cpu[:, 2] * cpu[:, 3] / 224**2,
        (gpu.boxes[:, 2] * gpu.boxes[:, 3]).numpy() / 224**2,
    ]
    assert abs(area[0].mean() - area[1].mean()) < mean_tolerance(*area)
    for boxes in (cpu, gpu.boxes.numpy()):
        assert (boxes[:, 0] + boxes[:, 2] <= 224).all()


# -- the ops against the CPU pipeline's, one parameter -----------------------


def run_cpu(transform, rgb: np.ndarray) -> np.ndarray:
    """A CPU pipeline step on an RGB image (the pipeline holds BGR)."""
    out = transform(dict(img=np.ascontiguousarray(rgb[..., ::-1])))
    return out['img'][..., ::-1].astype(np.float64)


def run_gpu(op, rgb: np.ndarray, *args) -> np.ndarray:
    batch = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float()
    return op(batch, *args)[0].permute(1, 2, 0).double().numpy()


OP_CASES = [
    ('AutoContrast', None),
    ('Equalize', None),
    ('Invert', None),
    ('Rotate', 20.0),
    ('Posterize', 2.0),
    ('Solarize', 100.0),
    ('SolarizeAdd', 60.0),
    ('ColorTransform', 0.6),
    ('Contrast', -0.5),
    ('Brightness', 0.5),
    ('Sharpness', 3.0),
    ('Shear', 0.2),
    ('Translate', 0.3),
]


@pytest.mark.parametrize('name,value', OP_CASES, ids=[c[0] for c in OP_CASES])
def test_rand_augment_op_matches_mmpretrain(name, value, one_thread):
    from mmseg.registry import TRANSFORMS

    rgb = textured(48, 64)
    fill = (104, 116, 124)
    kwargs = dict(prob=1.0)
    if value is not None:
        key = {'Rotate': 'angle', 'Posterize': 'bits', 'Solarize': 'thr'}
        kwargs[key.get(name, 'magnitude')] = value
        if name not in ('Posterize', 'Solarize', 'SolarizeAdd'):
            kwargs['random_negative_prob'] = 0.0
    if name in ('Rotate', 'Shear', 'Translate'):
        kwargs['pad_val'] = fill[::-1]  # OpenCV fills the BGR image
    step = TRANSFORMS.build(dict(type=f'mmpretrain.{name}', **kwargs))
    cpu = run_cpu(step, rgb)
    (op,) = aug.parse_rand_augment_policies([dict(type=name)], fill)
    magnitude = torch.tensor([0.0 if value is None else value])
    gpu = run_gpu(
        lambda b, m: aug.OP_FUNCTIONS[name](b, m, op), rgb, magnitude
    )
    assert np.abs(cpu - rgb).mean() > 5  # the op does change the image
    diff = np.abs(cpu - gpu)
    # the same up to a grey level where float rounding differs (the
    # sharpening's smoothed image, bicubic weights)
    assert diff.mean() < 0.2, diff.mean()
    assert diff.max() <= 2, diff.max()


@pytest.mark.parametrize('index', [0, 1, 2])
def test_color_jitter_ops_match_pillow(index, one_thread):
    from mmpretrain.datasets.transforms import ColorJitter

    rgb = textured(40, 40)
    for factor in (0.6, 1.3):
        values = [0.0, 0.0, 0.0]
        values[index] = (factor, factor)
        cpu = run_cpu(ColorJitter(*values), rgb)
        params = aug.ColorJitterParams(
            order=torch.tensor([[index, 3, (index + 1) % 3, (index + 2) % 3]]),
            brightness=torch.tensor([1.0]),
            contrast=torch.tensor([1.0]),
            saturation=torch.tensor([1.0]),
        )
        name = ('brightness', 'contrast', 'saturation')[index]
        setattr(params, name, torch.tensor([factor]))
        gpu = run_gpu(aug.color_jitter, rgb, params)
        assert np.abs(cpu - gpu).max() <= 1.0


def test_crop_and_resize_matches_pillow_bilinear(cpu_steps):
    from PIL import Image

    rgb = textured(120, 160)
    box = torch.tensor([[10, 20, 90, 110]])
    image = torch.from_numpy(rgb.copy()).permute(2, 0, 1)
    gpu = aug.crop_and_resize([image], box, (224, 224))[0]
    crop = Image.fromarray(rgb[10:100, 20:130])
    cpu = np.asarray(crop.resize((224, 224), Image.BILINEAR))
    diff = np.abs(gpu.permute(1, 2, 0).numpy() - cpu)
    assert diff.mean() < 0.5 and diff.max() <= 3
