"""Official GroupViT checkpoints -> our segmentor: every tensor, by name.

The official names and shapes are written below as data, read off the
NVlabs/GroupViT model code (``models/group_vit.py``,
``multi_label_contrastive.py``, ``transformer.py``, ``utils.py``): CI has
neither that code nor timm / einops. The slow tests at the end build the
official model itself from a checkout of it named by the environment
variable ``MIXREORG_NVLABS_GROUPVIT_DIR`` (skipped, saying so, without it;
docs/contributing.md), and check both that data and that the converted
weights compute what the official model computes.
"""

import argparse
import importlib
import importlib.util
import os
import os.path as osp
import shutil
import sys
import warnings

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.runner import load_checkpoint
from mmseg.registry import MODELS

from mixreorg_mmseg.utils.groupvit_checkpoint import (
    RULES,
    GroupViTConversionError,
    convert_groupvit_state_dict,
    convert_groupvit_state_dict_with_report,
)
from mixreorg_mmseg.utils.safe_checkpoint import (
    UnsafeCheckpointError,
    load_weights,
)

from .conftest import (
    GROUPVIT_TOY_CONFIG,
    MIXREORG_TOY_CONFIG,
    REPO_ROOT,
    float32_atol,
)

FULL_CONFIG = osp.join(REPO_ROOT, 'configs/groupvit_vit-s_cc12m.py')
CONVERTER = osp.join(REPO_ROOT, 'tools/model_converters/groupvit2mmseg.py')
#: A checkout of NVlabs/GroupViT (its ``models/`` is read, not installed):
#: the slow tests at the end compare with the official code where it is set.
NVLABS_DIR_VARIABLE = 'MIXREORG_NVLABS_GROUPVIT_DIR'
#: The official model modules, imported as one package under another name.
NVLABS_MODEL_FILES = (
    '__init__.py',
    'builder.py',
    'group_vit.py',
    'misc.py',
    'multi_label_contrastive.py',
    'transformer.py',
    'utils.py',
)
#: NVlabs/GroupViT configs/default.yml, the model the release files hold.
NVLABS_CFG = dict(
    type='MultiLabelContrastive',
    img_encoder=dict(
        type='GroupViT',
        embed_dim=384,
        num_heads=[6, 6, 6],
        depths=[6, 3, 3],
        num_group_tokens=[64, 8, 0],
        num_output_groups=[64, 8],
        drop_rate=0.0,
        drop_path_rate=0.1,
    ),
    text_encoder=dict(
        type='TextTransformer',
        context_length=77,
        width=256,
        layers=12,
        vocab_size=49408,
    ),
    contrast_temperature=0.07,
    proj_num_layers=2,
    output_dim=256,
    multi_label=3,
)

#: GroupViT ViT-S (NVlabs/GroupViT configs/default.yml), what the release
#: files hold.
FULL = dict(
    img_size=224,
    patch=16,
    dim=384,
    depths=(6, 3, 3),
    group_tokens=(64, 8, 0),
    output_groups=(64, 8),
    text_width=256,
    text_layers=12,
    context=77,
    vocab=49408,
    proj_hidden=4096,
    out_dim=256,
)
#: configs/quickstart/groupvit_tiny_toy-captions-64x64.py (and MixReorg's)
TINY = dict(
    img_size=64,
    patch=8,
    dim=64,
    depths=(2, 1, 1),
    group_tokens=(8, 4, 0),
    output_groups=(8, 4),
    text_width=64,
    text_layers=2,
    context=24,
    vocab=49408,
    proj_hidden=256,
    out_dim=64,
)


def official_layout(
    img_size,
    patch,
    dim,
    depths,
    group_tokens,
    output_groups,
    text_width,
    text_layers,
    context,
    vocab,
    proj_hidden,
    out_dim,
):
    """``(official name, shape, our name)`` of every entry of an official
    ``MultiLabelContrastive`` state dict (2-layer projectors, separate
    multi-label temperature, ``embed_factors`` all 1), in its order."""
    rows = [('logit_scale', (), 'logit_scale')]
    rows.append(('multi_label_logit_scale', (), 'multi_label_logit_scale'))

    def add(official, shape, ours):
        rows.append((official, tuple(shape), ours))

    def linear(official, ours, n_out, n_in, bias=True):
        ours = ours or official
        add(f'{official}.weight', (n_out, n_in), f'{ours}.weight')
        if bias:
            add(f'{official}.bias', (n_out,), f'{ours}.bias')

    def norm(official, ours, n):
        ours = ours or official
        add(f'{official}.weight', (n,), f'{ours}.weight')
        add(f'{official}.bias', (n,), f'{ours}.bias')

    grid = img_size // patch
    add('img_encoder.pos_embed', (1, grid * grid, dim), 'backbone.pos_embed')
    add(
        'img_encoder.patch_embed.proj.weight',
        (dim, 3, patch, patch),
        'backbone.patch_embed.projection.weight',
    )
    add(
        'img_encoder.patch_embed.proj.bias',
        (dim,),
        'backbone.patch_embed.projection.bias',
    )
    norm('img_encoder.patch_embed.norm', 'backbone.patch_embed.norm', dim)
    for i, depth in enumerate(depths):
        off, our = f'img_encoder.layers.{i}', f'backbone.layers.{i}'
        if group_tokens[i]:
            add(
                f'{off}.group_token',
                (1, group_tokens[i], dim),
                f'{our}.group_token',
            )
        for j in range(depth):
            ob, wb = f'{off}.blocks.{j}', f'{our}.blocks.{j}'
            norm(f'{ob}.norm1', f'{wb}.ln1', dim)
            linear(f'{ob}.attn.qkv', f'{wb}.attn.qkv', 3 * dim, dim)
            linear(f'{ob}.attn.proj', f'{wb}.attn.proj', dim, dim)
            norm(f'{ob}.norm2', f'{wb}.ln2', dim)
            linear(f'{ob}.mlp.fc1', f'{wb}.ffn.layers.0.0', 4 * dim, dim)
            linear(f'{ob}.mlp.fc2', f'{wb}.ffn.layers.1', dim, 4 * dim)
        if i < len(depths) - 1:
            od, wd = f'{off}.downsample', f'{our}.downsample'
            norm(f'{od}.norm_tokens', f'{wd}.norm_tokens', dim)
            linear(
                f'{od}.mlp_inter.fc1',
                f'{wd}.mlp_inter.fc1',
                dim // 2,
                group_tokens[i],
            )
            linear(
                f'{od}.mlp_inter.fc2',
                f'{wd}.mlp_inter.fc2',
                output_groups[i],
                dim // 2,
            )
            norm(f'{od}.norm_post_tokens', f'{wd}.norm_post_tokens', dim)
            norm(f'{od}.norm_x', f'{wd}.norm_x', dim)
            op, wp = f'{od}.pre_assign_attn', f'{wd}.pre_assign_attn'
            norm(f'{op}.norm_post', f'{wp}.norm_post', dim)
            for proj in ('q_proj', 'k_proj', 'v_proj', 'proj'):
                linear(f'{op}.attn.{proj}', f'{wp}.attn.{proj}', dim, dim)
            norm(f'{op}.norm2', f'{wp}.norm2', dim)
            linear(f'{op}.mlp.fc1', f'{wp}.mlp.layers.0.0', 4 * dim, dim)
            linear(f'{op}.mlp.fc2', f'{wp}.mlp.layers.1', dim, 4 * dim)
            for proj in ('q_proj', 'k_proj', 'v_proj', 'proj'):
                linear(f'{od}.assign.{proj}', f'{wd}.assign.{proj}', dim, dim)
            norm(f'{od}.norm_new_x', f'{wd}.norm_new_x', dim)
            linear(
                f'{od}.mlp_channels.fc1',
                f'{wd}.mlp_channels.layers.0.0',
                4 * dim,
                dim,
            )
            linear(
                f'{od}.mlp_channels.fc2',
                f'{wd}.mlp_channels.layers.1',
                dim,
                4 * dim,
            )
        if i > 0 and group_tokens[i]:
            og, wg = f'{off}.group_projector', f'{our}.group_projector'
            norm(f'{og}.0', f'{wg}.0', dim)
            linear(f'{og}.1.fc1', f'{wg}.1.fc1', dim // 2, group_tokens[i - 1])
            linear(f'{og}.1.fc2', f'{wg}.1.fc2', group_tokens[i], dim // 2)
    norm('img_encoder.norm', 'backbone.norm', dim)

    width = text_width
    add(
        'text_encoder.positional_embedding',
        (context, width),
        'text_encoder.positional_embedding',
    )
    for j in range(text_layers):
        name = f'text_encoder.transformer.resblocks.{j}'
        add(f'{name}.attn.in_proj_weight', (3 * width, width), None)
        add(f'{name}.attn.in_proj_bias', (3 * width,), None)
        linear(f'{name}.attn.out_proj', None, width, width)
        norm(f'{name}.ln_1', None, width)
        linear(f'{name}.mlp.c_fc', None, 4 * width, width)
        linear(f'{name}.mlp.c_proj', None, width, 4 * width)
        norm(f'{name}.ln_2', None, width)
    norm('text_encoder.ln_final', None, width)
    add('text_encoder.token_embedding.weight', (vocab, width), None)

    for official, ours, n_in in (
        ('img_projector', 'image_projector', dim),
        ('text_projector', 'text_projector', width),
    ):
        # Conv1d(kernel_size=1) weights: [out, in, 1]
        add(
            f'{official}.linear_hidden.0.weight',
            (proj_hidden, n_in, 1),
            f'{ours}.linear_hidden.0.weight',
        )
        add(
            f'{official}.linear_hidden.0.bias',
            (proj_hidden,),
            f'{ours}.linear_hidden.0.bias',
        )
        for entry in ('weight', 'bias', 'running_mean', 'running_var'):
            add(
                f'{official}.linear_hidden.1.{entry}',
                (proj_hidden,),
                f'{ours}.linear_hidden.1.{entry}',
            )
        add(
            f'{official}.linear_hidden.1.num_batches_tracked',
            (),
            f'{ours}.linear_hidden.1.num_batches_tracked',
        )
        add(
            f'{official}.linear_out.weight',
            (out_dim, proj_hidden, 1),
            f'{ours}.linear_out.weight',
        )
        add(
            f'{official}.linear_out.bias',
            (out_dim,),
            f'{ours}.linear_out.bias',
        )
    # None: the same name (the text encoder keeps OpenAI CLIP's names)
    return [(o, s, o if w is None else w) for o, s, w in rows]


def random_official(layout, seed=0):
    """A state dict with the official names; every tensor gets its own
    random values (BatchNorm counters: distinct integers)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for i, (name, shape, _) in enumerate(layout):
        if name.endswith('num_batches_tracked'):
            state[name] = torch.tensor(1000 + i)
        elif name.endswith('running_var'):
            state[name] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[name] = torch.randn(shape, generator=gen)
    return state


def build(config, seed=0):
    torch.manual_seed(seed)
    return MODELS.build(Config.fromfile(config).model)


def expected_value(official, name):
    value = official[name]
    return value[..., 0] if value.dim() == 3 and 'projector' in name else value


# --------------------------------------------------------------------------
# the layout written above is the released one
# --------------------------------------------------------------------------


def test_official_layout_has_the_released_parameter_counts():
    layout = official_layout(**FULL)
    assert len(layout) == len({name for name, _, _ in layout}) == 407

    def millions(prefix):
        return sum(
            torch.Size(shape).numel()
            for name, shape, _ in layout
            if name.startswith(prefix)
        )

    # GroupViT ViT-S: image 28.84M, text 22.15M parameters
    assert round(millions('img_encoder.') / 1e6, 2) == 28.84
    assert round(millions('text_encoder.') / 1e6, 2) == 22.15


def test_every_official_key_matches_exactly_one_rule():
    for name, _, _ in official_layout(**FULL):
        hits = [
            rule
            for rule in RULES
            if (match := rule.pattern.fullmatch(name))
            and (rule.check is None or rule.check(match))
        ]
        assert len(hits) == 1, (name, hits)


# --------------------------------------------------------------------------
# conversion
# --------------------------------------------------------------------------


def test_every_official_tensor_lands_where_it_should():
    """Full size: convert distinct random tensors, load strictly, and find
    each one, value for value, under its expected name."""
    layout = official_layout(**FULL)
    official = random_official(layout)
    model = build(FULL_CONFIG)
    converted = convert_groupvit_state_dict(
        {'model': official}, reference=model.state_dict()
    )
    assert set(converted) == set(model.state_dict())
    model.load_state_dict(converted, strict=True)
    ours = model.state_dict()
    for name, _, our_name in layout:
        expected = expected_value(official, name)
        assert ours[our_name].shape == expected.shape, name
        assert torch.equal(ours[our_name], expected), (name, our_name)
    # the Conv1d -> Linear squeeze, spelled out once
    assert ours['image_projector.linear_out.weight'].shape == (256, 4096)
    assert torch.equal(
        ours['text_projector.linear_hidden.0.weight'],
        official['text_projector.linear_hidden.0.weight'][:, :, 0],
    )


def test_ddp_prefix_and_the_release_extras_are_accepted():
    layout = official_layout(**TINY)
    official = random_official(layout)
    plain = convert_groupvit_state_dict(official)
    release = {
        'model': {f'module.{k}': v for k, v in official.items()},
        'optimizer': {'state': {}, 'param_groups': [{'lr': 0.1}]},
        'lr_scheduler': {'last_epoch': 29},
        'epoch': 29,
    }
    wrapped = convert_groupvit_state_dict(release)
    assert set(wrapped) == set(plain)
    for key in plain:
        assert torch.equal(wrapped[key], plain[key]), key


@pytest.fixture(scope='module')
def tiny_reference():
    return build(GROUPVIT_TOY_CONFIG).state_dict()


@pytest.fixture
def tiny_official():
    return random_official(official_layout(**TINY))


def test_unknown_official_keys_are_named(tiny_official, tiny_reference):
    tiny_official['img_encoder.head.weight'] = torch.zeros(10, 64)
    tiny_official['img_encoder.layers.0.downsample.reduction.1.weight'] = (
        torch.zeros(64, 64)
    )
    with pytest.raises(GroupViTConversionError) as info:
        convert_groupvit_state_dict(tiny_official, tiny_reference)
    assert 'img_encoder.head.weight' in str(info.value)
    assert 'downsample.reduction.1.weight' in str(info.value)
    # without a reference too: no rule knows them
    with pytest.raises(GroupViTConversionError, match='head.weight'):
        convert_groupvit_state_dict(tiny_official)


def test_model_keys_left_unfilled_are_named(tiny_official, tiny_reference):
    del tiny_official['img_encoder.layers.0.downsample.assign.k_proj.bias']
    del tiny_official['multi_label_logit_scale']
    with pytest.raises(GroupViTConversionError) as info:
        convert_groupvit_state_dict(tiny_official, tiny_reference)
    message = str(info.value)
    assert 'backbone.layers.0.downsample.assign.k_proj.bias' in message
    assert 'share_logit_scale=True' in message


def test_keys_the_model_lacks_are_named(tiny_official, tiny_reference):
    # a fourth stage: the rules know the names, the model does not
    tiny_official['img_encoder.layers.3.blocks.0.norm1.weight'] = torch.ones(
        64
    )
    with pytest.raises(GroupViTConversionError) as info:
        convert_groupvit_state_dict(tiny_official, tiny_reference)
    assert 'backbone.layers.3.blocks.0.ln1.weight' in str(info.value)
    assert 'img_encoder.layers.3.blocks.0.norm1.weight' in str(info.value)


@pytest.mark.parametrize(
    'name, shape',
    [
        ('img_encoder.pos_embed', (1, 65, 64)),
        ('text_encoder.transformer.resblocks.1.mlp.c_fc.weight', (256, 32)),
        ('img_projector.linear_out.weight', (64, 256, 3)),
        ('text_projector.linear_hidden.0.weight', (256, 64)),
    ],
)
def test_wrong_shapes_are_named(tiny_official, tiny_reference, name, shape):
    tiny_official[name] = torch.zeros(shape)
    with pytest.raises(
        GroupViTConversionError, match=name.replace('.', r'\.')
    ):
        convert_groupvit_state_dict(tiny_official, tiny_reference)


def test_non_tensor_entries_and_other_files_are_refused(tiny_official):
    tiny_official['img_encoder.norm.weight'] = [1.0, 2.0]
    with pytest.raises(
        GroupViTConversionError, match='img_encoder.norm.weight'
    ):
        convert_groupvit_state_dict(tiny_official)
    ours = {'state_dict': {'backbone.norm.weight': torch.ones(2)}}
    with pytest.raises(GroupViTConversionError, match='MMEngine checkpoint'):
        convert_groupvit_state_dict(ours)


def test_strict_false_drops_unknown_keys_with_a_warning(
    tiny_official, tiny_reference
):
    tiny_official['img_encoder.head.weight'] = torch.zeros(10, 64)
    del tiny_official['img_encoder.norm.bias']
    with pytest.warns(UserWarning) as record:
        report = convert_groupvit_state_dict_with_report(
            tiny_official, tiny_reference, strict=False
        )
    message = str(record[0].message)
    assert 'img_encoder.head.weight' in message
    assert 'backbone.norm.bias' in message
    assert report.unknown == ['img_encoder.head.weight']
    assert report.missing == ['backbone.norm.bias']
    assert 'img_encoder.head.weight' not in report.state_dict


def test_mixreorg_is_filled_but_for_its_training_only_mixer(tiny_official):
    """MixReorg's test-time network is GroupViT's: a converted GroupViT
    fills every key of it but ``mixer.*``."""
    mixreorg = build(MIXREORG_TOY_CONFIG)
    reference = mixreorg.state_dict()
    with pytest.raises(GroupViTConversionError, match='training-only mixer'):
        convert_groupvit_state_dict(tiny_official, reference)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        report = convert_groupvit_state_dict_with_report(
            tiny_official, reference, strict=False
        )
    assert report.missing
    assert all(key.startswith('mixer.') for key in report.missing)
    assert not report.unknown and not report.unexpected
    result = mixreorg.load_state_dict(report.state_dict, strict=False)
    assert sorted(result.missing_keys) == sorted(report.missing)
    assert not result.unexpected_keys


# --------------------------------------------------------------------------
# the command-line tool
# --------------------------------------------------------------------------


def converter_main():
    spec = importlib.util.spec_from_file_location('groupvit2mmseg', CONVERTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_cli_writes_a_checkpoint_that_load_from_reads(tmp_path, tiny_official):
    src, dst = tmp_path / 'official.pth', tmp_path / 'out' / 'converted.pth'
    torch.save({'model': tiny_official, 'epoch': 29}, src)
    converter_main()([str(src), str(dst), '--config', GROUPVIT_TOY_CONFIG])

    checkpoint = load_weights(dst)
    assert set(checkpoint) == {'meta', 'state_dict'}
    assert checkpoint['meta']['converted_from'] == 'official.pth'
    assert checkpoint['meta']['official_epoch'] == 29
    # MMEngine's loader (what load_from and tools/test.py use), strictly
    model = build(GROUPVIT_TOY_CONFIG, seed=1)
    load_checkpoint(model, str(dst), map_location='cpu', strict=True)
    ours = model.state_dict()
    for name, _, our_name in official_layout(**TINY):
        assert torch.equal(
            ours[our_name], expected_value(tiny_official, name)
        ), name


def test_cli_for_mixreorg_needs_allow_missing(tmp_path, tiny_official, capsys):
    src, dst = tmp_path / 'official.pth', tmp_path / 'converted.pth'
    torch.save({'model': tiny_official}, src)
    main = converter_main()
    args = [str(src), str(dst), '--config', MIXREORG_TOY_CONFIG]
    with pytest.raises(SystemExit, match='mixer.progressive_blocks.0'):
        main(args)
    assert not dst.exists()
    main([*args, '--allow-missing'])
    assert 'left unfilled' in capsys.readouterr().out
    model = build(MIXREORG_TOY_CONFIG)
    load_checkpoint(model, str(dst), map_location='cpu', strict=False)


def test_cli_refuses_pickled_objects_and_says_what_to_do(
    tmp_path, tiny_official
):
    src = tmp_path / 'release.pth'
    torch.save(
        {'model': tiny_official, 'config': argparse.Namespace(lr=0.1)}, src
    )
    with pytest.raises(SystemExit) as info:
        converter_main()([str(src), str(tmp_path / 'out.pth')])
    message = str(info.value)
    assert 'argparse.Namespace' in message
    assert 'sanitize_checkpoint.py --i-trust-this-file' in message
    assert str(src) in message
    with pytest.raises(UnsafeCheckpointError):
        load_weights(src)


# --------------------------------------------------------------------------
# against the official code (where a mirror of it is on this machine)
# --------------------------------------------------------------------------


def import_nvlabs_models(checkout, package_dir):
    """NVlabs/GroupViT's ``models`` package from ``checkout``, copied into
    ``package_dir`` as ``nvlabs_groupvit_models``, with stand-ins for the
    three imports this stack lacks: mmcv 1.x's ``Registry`` (MMEngine's),
    ``omegaconf`` (its config is a plain dict here) and ``diffdist``'s
    all-gather (one process: the identity). Returns the package and the
    ``sys.modules`` entries it replaced (to restore)."""
    import types

    from mmengine.registry import Registry

    target = osp.join(package_dir, 'nvlabs_groupvit_models')
    os.makedirs(target)
    for name in NVLABS_MODEL_FILES:
        shutil.copy(osp.join(checkout, 'models', name), target)

    class Gather(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            return grad

    diffdist = types.ModuleType('diffdist')
    diffdist.functional = types.SimpleNamespace(
        all_gather=lambda out, x: [Gather.apply(x)]
    )
    stand_ins = {
        'mmcv.utils': types.SimpleNamespace(Registry=Registry),
        'omegaconf': types.SimpleNamespace(
            OmegaConf=types.SimpleNamespace(
                to_container=lambda cfg, resolve=True: cfg
            )
        ),
        'diffdist': diffdist,
        'diffdist.functional': diffdist.functional,
    }
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    sys.path.insert(0, package_dir)
    try:
        return importlib.import_module('nvlabs_groupvit_models'), saved
    finally:
        sys.path.remove(package_dir)


@pytest.fixture(scope='module')
def official_model(tmp_path_factory):
    """The official ``MultiLabelContrastive`` (ViT-S), random weights, eval
    mode, built from the checkout ``$MIXREORG_NVLABS_GROUPVIT_DIR``."""
    checkout = os.environ.get(NVLABS_DIR_VARIABLE)
    if not checkout:
        pytest.skip(
            f'comparison with the official code skipped: set '
            f'{NVLABS_DIR_VARIABLE} to a checkout of NVlabs/GroupViT '
            '(docs/contributing.md)'
        )
    if not osp.isfile(osp.join(checkout, 'models', 'group_vit.py')):
        pytest.fail(
            f'{NVLABS_DIR_VARIABLE}={checkout} is not a checkout of '
            'NVlabs/GroupViT (no models/group_vit.py)'
        )
    pytest.importorskip('timm')
    pytest.importorskip('einops')
    saved_modules = {}
    convert_sync_bn = nn.SyncBatchNorm.convert_sync_batchnorm
    try:
        # plain BatchNorm: one process, maybe on CPU
        nn.SyncBatchNorm.convert_sync_batchnorm = classmethod(
            lambda cls, module, *args, **kwargs: module
        )
        official, saved_modules = import_nvlabs_models(
            checkout, str(tmp_path_factory.mktemp('nvlabs'))
        )
        torch.manual_seed(0)
        model = official.build_model(NVLABS_CFG)
    finally:
        nn.SyncBatchNorm.convert_sync_batchnorm = convert_sync_bn
        for name, module in saved_modules.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    # no zeros or ones left from the initialisation: a swap would show
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                noise = torch.randn(tensor.shape, generator=gen)
                if 'running_var' in name:
                    tensor.copy_(1.0 + 0.5 * noise.abs())
                else:
                    tensor.add_(0.02 * noise)
    return model.eval()


@pytest.mark.slow
def test_official_model_has_the_layout_written_here(official_model):
    official = {
        k: tuple(v.shape) for k, v in official_model.state_dict().items()
    }
    written = {name: shape for name, shape, _ in official_layout(**FULL)}
    assert official == written


@pytest.mark.slow
def test_converted_official_weights_compute_the_official_embeddings(
    official_model,
):
    """Same image and text embeddings, segment embeddings and grouping
    assignments as the official model, eval mode, 224 x 224."""
    ours = build(FULL_CONFIG, seed=3).eval()
    converted = convert_groupvit_state_dict(
        {'model': official_model.state_dict()}, reference=ours.state_dict()
    )
    ours.load_state_dict(converted, strict=True)

    gen = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 224, 224, generator=gen)
    tokens = ours.text_encoder.tokenize(
        ['a photo of a dog.', 'two cats asleep on a red sofa in the sun']
    )
    with torch.no_grad():
        expected = official_model.encode_image(
            images, return_feat=True, as_dict=True
        )
        attn = official_model.img_encoder(
            images, return_attn=True, as_dict=True
        )['attn_dicts']
        expected_text = official_model.encode_text(tokens)
        got = ours.encode_image(images)
        got_text = ours.text_projector(ours.text_encoder(tokens))

    # Two float32 implementations of one model round differently. Rounded
    # additions per image block (width 384, MLP 1536, head width 64, 196 +
    # 64 tokens): LayerNorms 4 x 384, qkv 384, q.k 64, softmax and values
    # 2 x 260, out 384, MLP 384 + 1536; 12 blocks and the 2 grouping blocks
    # (cross-attention over the tokens, token and channel MLPs) counted as
    # 2 more, then the projector (384 + 4096). Text: 12 blocks of width
    # 256, MLP 1024, 77 tokens, then its projector (256 + 4096).
    image_terms = 14 * (4 * 384 + 384 + 64 + 2 * 260 + 384 + 384 + 1536)
    image_terms += 384 + 4096
    text_terms = 12 * (4 * 256 + 256 + 64 + 2 * 77 + 256 + 256 + 1024)
    text_terms += 256 + 4096

    def close(a, b, terms=image_terms):
        atol = float32_atol(terms, b.abs().max())
        torch.testing.assert_close(a, b, rtol=0, atol=atol)

    close(got['image_embed'], expected['image_x'])
    close(got['segment_embeds'], expected['image_feat'])
    close(got_text, expected_text, text_terms)
    for ours_assign, official_assign in zip(
        got['output'].assignments, attn[:2], strict=True
    ):
        close(ours_assign['soft'], official_assign['soft'][:, 0])
        close(ours_assign['hard'], official_assign['hard'][:, 0])
