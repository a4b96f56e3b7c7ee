"""transformers' GroupViT <-> ours: the same functions of the same weights.

A randomly initialised transformers ``GroupViTModel`` is saved as a folder,
converted by ``tools/model_converters/groupvit2mmseg.py``'s code and loaded
into our model built from a config of the same sizes; both see the same
images and the same CLIP token ids. The other way, our model (MixReorg's,
with its training-only mixer) is written as a folder that
``GroupViTModel.from_pretrained`` loads with every key in place.
"""

import importlib.util
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
import transformers
from mmengine.config import Config
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS

from mixreorg_mmseg.models.backbones.groupvit import chain_assignments
from mixreorg_mmseg.utils.groupvit_checkpoint import GroupViTConversionError
from mixreorg_mmseg.utils.hf_groupvit_checkpoint import (
    MULTI_LABEL_SCALE_METADATA,
    PYTORCH_FILE,
    SAFETENSORS_FILE,
    groupvit_hf_config,
    hf_folder_to_mmengine_checkpoint,
    hf_key_pairs,
    model_to_hf_folder,
)
from mixreorg_mmseg.utils.safe_checkpoint import load_weights

from .conftest import (
    GROUPVIT_TOY_CONFIG,
    MIXREORG_TOY_CONFIG,
    REPO_ROOT,
    float32_atol,
)

FULL_CONFIG = osp.join(REPO_ROOT, 'configs/groupvit_vit-s_cc12m.py')
SYNTHETIC_CONFIG = osp.join(
    REPO_ROOT, 'configs/synthetic_world/groupvit_tiny_synthetic-world-64x64.py'
)
TOOLS = osp.join(REPO_ROOT, 'tools/model_converters')
TEXTS = [
    'a photo of a dog.',
    'two cats asleep on a red sofa in the sun',
    'sky',
    'a tree',
    'a road',
    'the sea',
    'grass',
    'a car',
]


def tool_main(name):
    """``main`` of ``tools/model_converters/<name>.py``."""
    spec = importlib.util.spec_from_file_location(
        name, osp.join(TOOLS, f'{name}.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def build(config, seed=0, **backbone):
    torch.manual_seed(seed)
    cfg = Config.fromfile(config)
    cfg.model.backbone.update(backbone)
    return MODELS.build(cfg.model)


def randomise(model, seed):
    """Weights of unit-variance layers, so that segments differ
    (transformers' initialisation is small enough to give every pixel one
    class); no zeros or ones left, so a swap of two tensors would show.
    Whether the pixels of a random model take more than one class depends
    on the draw: the seeds below are ones where they do, which ``compare``
    asserts."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point() or 'logit_scale' in name:
                continue
            noise = torch.randn(tensor.shape, generator=gen)
            if 'running_var' in name:
                tensor.copy_(1.0 + 0.5 * noise.abs())
            elif 'embedding' in name or 'group_token' in name:
                tensor.copy_(noise)
            elif tensor.dim() >= 2:
                tensor.copy_(noise / tensor[0].numel() ** 0.5)
            else:
                tensor.add_(0.1 * noise)
    return model


def hf_model(config_kwargs, seed=8):
    torch.manual_seed(seed)
    model = transformers.GroupViTModel(
        transformers.GroupViTConfig(**config_kwargs)
    )
    return randomise(model, seed).eval()


def convert_folder(folder, ours, strict=True):
    reference = ours.state_dict()
    checkpoint, report = hf_folder_to_mmengine_checkpoint(
        folder, reference, groupvit_hf_config(ours), strict=strict
    )
    return checkpoint, report


@pytest.fixture(scope='module')
def tiny_pair(tmp_path_factory):
    """A random transformers GroupViT of the toy config's sizes, its folder,
    and our toy model loaded (strictly) from the converted folder."""
    ours = build(GROUPVIT_TOY_CONFIG).eval()
    hf = hf_model(groupvit_hf_config(ours))
    folder = tmp_path_factory.mktemp('hf_tiny') / 'groupvit'
    hf.save_pretrained(folder)
    checkpoint, _ = convert_folder(folder, ours)
    ours.load_state_dict(checkpoint['state_dict'], strict=True)
    return hf, ours, folder


def compare(hf, ours, image_size, image_terms, text_terms, min_classes=2):
    """Image and text embeddings, per-stage soft assignments, segment
    embeddings and per-pixel classes of both models on the same inputs;
    transformers' pixels must take at least ``min_classes`` classes."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, image_size, image_size, generator=gen)
    tokens = ours.text_encoder.tokenize(TEXTS)
    with torch.no_grad():
        expected = hf(
            input_ids=tokens,
            pixel_values=images,
            output_segmentation=True,
        )
        got = ours.encode_image(images)
        got_text = ours.text_projector(ours.text_encoder(tokens))
        last = expected.vision_model_output.last_hidden_state
        expected_segments = hf.visual_projection(
            last.reshape(-1, last.shape[-1])
        ).reshape(*last.shape[:2], -1)

    def close(a, b, terms):
        atol = float32_atol(terms, b.abs().max())
        torch.testing.assert_close(a, b, rtol=0, atol=atol)

    # transformers returns unit vectors; the normalisation adds D terms
    dim = got_text.shape[-1]
    close(
        F.normalize(got['image_embed'], dim=-1),
        expected.image_embeds,
        image_terms + dim,
    )
    close(
        F.normalize(got_text, dim=-1), expected.text_embeds, text_terms + dim
    )
    close(got['segment_embeds'], expected_segments, image_terms)
    attentions = expected.vision_model_output.attentions
    assert len(attentions) == len(got['output'].assignments)
    for ours_assign, hf_assign in zip(
        got['output'].assignments, attentions, strict=True
    ):
        close(ours_assign['soft'], hf_assign, image_terms)

    # transformers' segmentation_logits: each final segment's class logits
    # weighted by the chained soft assignment, resized to the image (and
    # times the logit scale twice); from our model's outputs:
    maps = chain_assignments(
        got['output'].assignments,
        got['output'].hw_shape,
        'soft',
        out_size=images.shape[-2:],
    )
    segments = F.normalize(got['segment_embeds'], dim=-1)
    logits = segments @ F.normalize(got_text, dim=-1).t()  # [B, S, K]
    ours_pixels = torch.einsum('bshw,bsk->bkhw', maps, logits)
    hf_pixels = expected.segmentation_logits / hf.logit_scale.exp() ** 2
    hf_class = hf_pixels.argmax(dim=1)
    # classes differ across the image, or the check could not fail
    assert hf_class.unique().numel() >= min_classes
    agree = (ours_pixels.argmax(dim=1) == hf_class).float().mean()
    assert agree >= 0.999, float(agree)
    return agree


def test_transformers_groupvit_computes_what_ours_computes(tiny_pair):
    hf, ours, _ = tiny_pair
    # Two float32 implementations of one model round differently. Rounded
    # additions per image block (width 64, MLP 256, head width 32, 64 + 8
    # tokens): LayerNorms 4 x 64, qkv 64, q.k 32, softmax and values
    # 2 x 72, out 64, MLP 64 + 256; 4 layers and the 2 grouping blocks
    # counted as 2 more, then the projector (64 + 256). Text: 2 blocks of
    # width 64, MLP 256, 24 tokens, then its projector (64 + 256).
    image_terms = 6 * (4 * 64 + 64 + 32 + 2 * 72 + 64 + 64 + 256) + 64 + 256
    text_terms = 2 * (4 * 64 + 64 + 32 + 2 * 24 + 64 + 64 + 256) + 64 + 256
    compare(hf, ours, 64, image_terms, text_terms)


def test_every_transformers_tensor_has_one_place_in_ours(tiny_pair):
    hf, ours, _ = tiny_pair
    pairs = hf_key_pairs(groupvit_hf_config(ours))
    hf_names = [name for pair in pairs for name in pair.hf]
    assert sorted(hf_names) == sorted(hf.state_dict())
    our_names = [pair.ours for pair in pairs]
    assert len(set(our_names)) == len(our_names)
    # ours has one more: the multi-label temperature transformers lacks
    assert set(ours.state_dict()) - set(our_names) == {
        'multi_label_logit_scale'
    }


def test_a_folder_converted_by_the_tool_loads_strictly(tiny_pair, tmp_path):
    hf, _, folder = tiny_pair
    main = tool_main('groupvit2mmseg')
    dst = tmp_path / 'converted.pth'
    main([str(folder), str(dst), '--config', GROUPVIT_TOY_CONFIG])
    checkpoint = load_weights(dst)
    assert checkpoint['meta']['source_format'] == (
        'transformers GroupViTModel'
    )
    model = build(GROUPVIT_TOY_CONFIG, seed=5)
    load_checkpoint(model, str(dst), map_location='cpu', strict=True)
    state = model.state_dict()
    hf_state = hf.state_dict()
    assert torch.equal(
        state['backbone.layers.0.blocks.1.attn.qkv.weight'],
        torch.cat(
            [
                hf_state[
                    f'vision_model.encoder.stages.0.layers.1.self_attn.'
                    f'{p}_proj.weight'
                ]
                for p in 'qkv'
            ]
        ),
    )
    # one temperature in transformers: the multi-label one starts from it
    assert torch.equal(
        state['multi_label_logit_scale'], hf_state['logit_scale']
    )


def test_a_pytorch_bin_folder_converts_too(tiny_pair, tmp_path):
    hf, ours, _ = tiny_pair
    folder = tmp_path / 'bin'
    hf.config.save_pretrained(folder)
    torch.save(hf.state_dict(), folder / PYTORCH_FILE)
    checkpoint, _ = convert_folder(folder, ours)
    for key, value in ours.state_dict().items():
        assert torch.equal(checkpoint['state_dict'][key], value), key


def test_unknown_and_absent_tensors_are_named(tiny_pair, tmp_path):
    hf, ours, _ = tiny_pair
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in hf.state_dict().items()}
    state['vision_model.head.weight'] = torch.zeros(2, 2)
    folder = tmp_path / 'extra'
    hf.config.save_pretrained(folder)
    save_file(state, folder / SAFETENSORS_FILE)
    with pytest.raises(GroupViTConversionError, match='vision_model.head'):
        convert_folder(folder, ours)

    del state['vision_model.head.weight']
    del state['text_model.encoder.layers.1.self_attn.k_proj.bias']
    save_file(state, folder / SAFETENSORS_FILE)
    with pytest.raises(
        GroupViTConversionError, match=r'layers\.1\.self_attn\.k_proj\.bias'
    ):
        convert_folder(folder, ours)


def test_a_config_that_computes_another_function_is_named(tiny_pair, tmp_path):
    """Head counts and activations change no shape: only config.json
    tells, and the converter names the field."""
    hf, ours, _ = tiny_pair
    config = hf.config.to_dict()
    config['vision_config']['num_attention_heads'] = 4
    config['text_config']['hidden_act'] = 'gelu'
    other = transformers.GroupViTModel(transformers.GroupViTConfig(**config))
    other.save_pretrained(tmp_path / 'other')
    with pytest.raises(GroupViTConversionError) as info:
        convert_folder(tmp_path / 'other', ours)
    message = str(info.value)
    assert 'vision_config.num_attention_heads=4' in message
    assert 'backbone.num_heads' in message
    assert "text_config.hidden_act='gelu'" in message


def test_not_a_groupvit_folder_is_named(tmp_path, tiny_pair):
    _, ours, _ = tiny_pair
    (tmp_path / 'config.json').write_text('{"model_type": "clip"}')
    with pytest.raises(GroupViTConversionError, match="'clip'"):
        convert_folder(tmp_path, ours)


# --------------------------------------------------------------------------
# ours -> transformers
# --------------------------------------------------------------------------


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """The toy MixReorg model, random weights, written by the export tool."""
    model = randomise(build(MIXREORG_TOY_CONFIG), seed=7)
    with torch.no_grad():
        model.multi_label_logit_scale.fill_(2.5)
    tmp = tmp_path_factory.mktemp('export')
    checkpoint = tmp / 'mixreorg.pth'
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, checkpoint)
    main = tool_main('mmseg2hf_groupvit')
    main([MIXREORG_TOY_CONFIG, str(checkpoint), str(tmp / 'hf')])
    return model.eval(), tmp / 'hf'


def test_export_loads_in_transformers_with_every_key_in_place(exported):
    model, folder = exported
    hf, info = transformers.GroupViTModel.from_pretrained(
        folder, output_loading_info=True
    )
    assert not info['missing_keys'] and not info['unexpected_keys'], info
    assert not info['mismatched_keys'], info
    hf_state = hf.state_dict()
    ours = model.state_dict()
    for pair in hf_key_pairs(groupvit_hf_config(model)):
        tensors = [hf_state[name] for name in pair.hf]
        joined = tensors[0] if len(tensors) == 1 else torch.cat(tensors)
        assert torch.equal(joined, ours[pair.ours]), pair
    image_terms = 6 * (4 * 64 + 64 + 32 + 2 * 72 + 64 + 64 + 256) + 64 + 256
    text_terms = 2 * (4 * 64 + 64 + 32 + 2 * 24 + 64 + 64 + 256) + 64 + 256
    compare(hf.eval(), model, 64, image_terms, text_terms)


def test_round_trip_gives_back_identical_tensors(exported, tmp_path):
    model, folder = exported
    main = tool_main('groupvit2mmseg')
    dst = tmp_path / 'back.pth'
    # the mixer is not in the folder: MixReorg's config needs --allow-missing
    main(
        [
            str(folder),
            str(dst),
            '--config',
            MIXREORG_TOY_CONFIG,
            '--allow-missing',
        ]
    )
    back = load_weights(dst)['state_dict']
    ours = model.state_dict()
    assert set(back) == {k for k in ours if not k.startswith('mixer.')}
    for key, value in back.items():
        assert value.dtype == ours[key].dtype, key
        assert torch.equal(value, ours[key]), key
    assert float(back['multi_label_logit_scale']) == 2.5


def test_export_refuses_an_existing_folder(exported, tmp_path):
    model, folder = exported
    main = tool_main('mmseg2hf_groupvit')
    checkpoint = tmp_path / 'c.pth'
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    with pytest.raises(SystemExit, match='already holds config.json'):
        main([MIXREORG_TOY_CONFIG, str(checkpoint), str(folder)])


def test_export_names_checkpoint_keys_that_do_not_fit(tmp_path):
    model = build(GROUPVIT_TOY_CONFIG)
    state = model.state_dict()
    del state['backbone.norm.bias']
    state['backbone.extra'] = torch.zeros(1)
    checkpoint = tmp_path / 'c.pth'
    torch.save({'state_dict': state}, checkpoint)
    main = tool_main('mmseg2hf_groupvit')
    with pytest.raises(SystemExit) as info:
        main([GROUPVIT_TOY_CONFIG, str(checkpoint), str(tmp_path / 'hf')])
    assert 'backbone.norm.bias' in str(info.value)
    assert 'backbone.extra' in str(info.value)


@pytest.mark.parametrize(
    'change, option',
    [
        (dict(num_heads=(2, 4, 2)), 'backbone.num_heads=[2, 4, 2]'),
        (dict(hard_assignment=False), 'backbone.hard_assignment=False'),
        (dict(num_output_groups=(6, 4)), 'num_output_groups=[6, 4]'),
    ],
)
def test_export_names_what_transformers_cannot_represent(
    tmp_path, change, option
):
    model = build(GROUPVIT_TOY_CONFIG, **change)
    with pytest.raises(
        GroupViTConversionError, match=option.replace('[', r'\[')
    ):
        model_to_hf_folder(model, tmp_path)
    assert not (tmp_path / 'config.json').exists()


def test_export_names_the_synthetic_world_options():
    """The conv stem and the patch readout of the synthetic-world configs."""
    model = MODELS.build(Config.fromfile(SYNTHETIC_CONFIG).model)
    with pytest.raises(GroupViTConversionError, match='stem_channels'):
        groupvit_hf_config(model)
    model.backbone.stem_channels = None
    with pytest.raises(
        GroupViTConversionError, match="segment_readout='patch'"
    ):
        groupvit_hf_config(model)


def test_the_folder_keeps_the_multi_label_temperature(exported):
    _, folder = exported
    from safetensors import safe_open

    with safe_open(str(folder / SAFETENSORS_FILE), framework='pt') as f:
        assert f.metadata()[MULTI_LABEL_SCALE_METADATA] == '2.5'


# --------------------------------------------------------------------------
# the released architecture
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_released_architecture_computes_what_ours_computes(tmp_path):
    """transformers' default GroupViTConfig (nvidia/groupvit-gcc-yfcc's
    sizes) against configs/groupvit_vit-s_cc12m.py, 224 x 224."""
    ours = build(FULL_CONFIG).eval()
    config = transformers.GroupViTConfig()
    assert groupvit_hf_config(ours)['vision_config']['depths'] == list(
        config.vision_config.depths
    )
    hf = randomise(transformers.GroupViTModel(config), seed=4).eval()
    hf.save_pretrained(tmp_path / 'vit-s')
    checkpoint, _ = convert_folder(tmp_path / 'vit-s', ours)
    ours.load_state_dict(checkpoint['state_dict'], strict=True)
    # per block as in the tiny test: width 384, MLP 1536, head width 64,
    # 196 + 64 tokens, 12 layers and 2 grouping blocks, projector 384 + 4096;
    # text 12 blocks of width 256, MLP 1024, 77 tokens, projector 256 + 4096
    image_terms = 14 * (4 * 384 + 384 + 64 + 2 * 260 + 384 + 384 + 1536)
    image_terms += 384 + 4096
    text_terms = 12 * (4 * 256 + 256 + 64 + 2 * 77 + 256 + 256 + 1024)
    text_terms += 256 + 4096
    # 12 random layers make the tokens of an image alike: every pixel of an
    # image takes one class (the tiny models test the pixel rule)
    compare(hf, ours, 224, image_terms, text_terms, min_classes=1)


# --------------------------------------------------------------------------
# zero-shot through the stock tools
# --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_converted_folder_runs_in_tools_test_and_demo(tmp_path):
    """transformers folder -> groupvit2mmseg.py -> tools/test.py on a tiny
    VOC layout with the VOC config (its encoders shrunk), and
    tools/demo.py."""
    import numpy as np

    from .conftest import run_python, tiny_groupvit_cfg
    from .test_zero_shot_tools import (
        assert_iou_table,
        shrunk_config,
        write_voc,
    )

    model_cfg = tiny_groupvit_cfg(str(tmp_path), str(tmp_path)).model
    torch.manual_seed(0)
    ours = MODELS.build(model_cfg)
    hf_model(groupvit_hf_config(ours)).save_pretrained(tmp_path / 'hf')
    root = write_voc(tmp_path / 'voc', np.random.default_rng(0))
    config = shrunk_config(
        'groupvit_vit-s_voc12.py', model_cfg, str(tmp_path / 'voc.py'), root
    )
    converted = str(tmp_path / 'converted.pth')
    proc = run_python(
        [
            'tools/model_converters/groupvit2mmseg.py',
            str(tmp_path / 'hf'),
            converted,
            '--config',
            config,
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run_python(
        ['tools/test.py', config, converted, '--work-dir', str(tmp_path / 'w')]
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'zero-shot head: 21 classes' in log
    assert_iou_table(log, ['background', 'aeroplane', 'tvmonitor'])
    out = str(tmp_path / 'demo.png')
    image = osp.join(root, 'JPEGImages', '2007_000033.jpg')
    proc = run_python(
        [
            'tools/demo.py',
            image,
            config,
            converted,
            # the VOC config renames these three for its prompts
            '--classes',
            'cat, dog, diningtable, pottedplant, tvmonitor',
            '--device',
            'cpu',
            '--out',
            out,
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f'wrote {out}' in proc.stdout
