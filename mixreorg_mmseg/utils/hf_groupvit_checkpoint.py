"""GroupViT weights in Hugging Face transformers' layout, both ways.

transformers' ``GroupViTModel`` is saved as a folder: ``config.json`` (the
sizes, ``model_type: groupvit``) and ``model.safetensors`` (or
``pytorch_model.bin``, or shards of either with an ``.index.json``).
:func:`hf_folder_to_mmengine_checkpoint` turns such a folder into the
MMEngine checkpoint of :class:`~mixreorg_mmseg.models.segmentors.
TextSupervisedSegmentor`; :func:`model_to_hf_folder` writes one of our
GroupViT or MixReorg models as such a folder.

What maps to what (transformers -> ours, ``i`` stage, ``j`` layer)::

    vision_model.embeddings.                 backbone.
        patch_embeddings.projection              patch_embed.projection
        layernorm, position_embeddings           patch_embed.norm, pos_embed
    vision_model.encoder.stages.i.           backbone.layers.i.
        group_token, group_projector.*           (same names)
        layers.j.layer_norm1 / layer_norm2       blocks.j.ln1 / ln2
        layers.j.self_attn.q/k/v_proj            blocks.j.attn.qkv (stacked
                                                 q, k, v along the outputs)
        layers.j.self_attn.out_proj              blocks.j.attn.proj
        layers.j.mlp.fc1 / fc2                   blocks.j.ffn.layers.0.0 / .1
        downsample.*                             downsample.* (same names but
            pre_assign_attn.attn.out_proj            pre_assign_attn.attn.proj
            pre_assign_attn.mlp.fc1 / fc2            ...mlp.layers.0.0 / .1
            mlp_channels.fc1 / fc2                   ...layers.0.0 / .1)
    vision_model.layernorm                   backbone.norm
    text_model.embeddings.                   text_encoder.
        token_embedding                          token_embedding
        position_embedding.weight                positional_embedding
    text_model.encoder.layers.j.             text_encoder.transformer.
                                             resblocks.j.
        self_attn.q/k/v_proj                     attn.in_proj_weight / _bias
                                                 (stacked q, k, v)
        self_attn.out_proj                       attn.out_proj
        layer_norm1 / 2, mlp.fc1 / fc2           ln_1 / 2, mlp.c_fc / c_proj
    text_model.final_layer_norm              text_encoder.ln_final
    visual_projection.0 / .1 / .3            image_projector.linear_hidden.0
    (Linear, BatchNorm1d, Linear)            / .linear_hidden.1 / linear_out
    text_projection.0 / .1 / .3              text_projector.(same)
    logit_scale                              logit_scale

transformers keeps one temperature and no MixReorg mixer: exporting drops
MixReorg's training-only ``mixer.*`` and keeps our
``multi_label_logit_scale`` (the multi-label loss's temperature, used in
training only) in the metadata of ``model.safetensors``
(``MULTI_LABEL_SCALE_METADATA``), which transformers ignores; importing
reads it back from there, else copies ``logit_scale``. A round trip gives
back every tensor exactly.

The two implementations compute the same functions with these weights where
the config says so; what a config must hold for that is checked both ways,
naming the option (:func:`groupvit_hf_config`, :func:`hf_config_mismatches`;
the list with reasons is in docs/zero_shot.md). ``tests/
test_hf_groupvit_checkpoint.py`` compares the two models' outputs.

Reading and writing folders needs ``transformers`` and ``safetensors``
(``pip install 'mixreorg-mmseg[hf]'``); this module imports them only when
it uses them, and never ``mmseg`` (see :mod:`mixreorg_mmseg.utils`).
"""

from __future__ import annotations

import json
import os
import os.path as osp
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .groupvit_checkpoint import (
    ConversionReport,
    GroupViTConversionError,
    check_conversion,
)
from .safe_checkpoint import UnsafeCheckpointError, load_weights

CONFIG_FILE = 'config.json'
SAFETENSORS_FILE = 'model.safetensors'
PYTORCH_FILE = 'pytorch_model.bin'
INDEX_SUFFIX = '.index.json'
MODEL_TYPE = 'groupvit'

#: CLIP's BPE vocabulary: its end-of-text token has the largest id, where
#: both text encoders pool.
CLIP_VOCAB_SIZE = 49408
CLIP_BOS_TOKEN_ID = 49406
CLIP_EOS_TOKEN_ID = 49407
#: transformers' CLIP-style text models pool at the largest token id (as
#: ours) when ``eos_token_id`` is this legacy value, else at the first
#: ``eos_token_id``.
LEGACY_ARGMAX_EOS_TOKEN_ID = 2

#: Our keys transformers' GroupViT has no place for; export drops them.
TRAINING_ONLY_PREFIXES = ('mixer.',)
TRAINING_ONLY_KEYS = ('multi_label_logit_scale',)

#: Metadata entry of ``model.safetensors`` that keeps our multi-label
#: temperature (``repr`` of a float, exact for a float32 value).
MULTI_LABEL_SCALE_METADATA = 'mixreorg_mmseg.multi_label_logit_scale'

#: Fixed by our modules (LayerNorm eps, GroupViT's grouping block).
LAYER_NORM_EPS = 1e-5
ASSIGN_EPS = 1.0
ASSIGN_MLP_RATIO = (0.5, 4)

INSTALL_HINT = (
    "needs transformers and safetensors: pip install 'mixreorg-mmseg[hf]'"
)


def _require(module: str):
    try:
        return __import__(module, fromlist=['_'])
    except ImportError:
        raise GroupViTConversionError(
            f'reading or writing transformers folders {INSTALL_HINT} '
            f'({module} is not installed)'
        ) from None


# --------------------------------------------------------------------------
# the key map
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    """One of our tensors and where it lives in transformers' layout.

    Attributes:
        hf: one transformers name, or the q, k and v projections that our
            fused attention stacks along dim 0 (in that order).
        ours: our name.
    """

    hf: tuple[str, ...]
    ours: str


def _same(pairs, hf_module, our_module, entries=('weight', 'bias')):
    for entry in entries:
        pairs.append(
            KeyPair((f'{hf_module}.{entry}',), f'{our_module}.{entry}')
        )


def _stacked_qkv(pairs, hf_attn, our_weight, our_bias):
    for entry, ours in (('weight', our_weight), ('bias', our_bias)):
        pairs.append(
            KeyPair(tuple(f'{hf_attn}.{p}_proj.{entry}' for p in 'qkv'), ours)
        )


_BATCH_NORM = ('weight', 'bias', 'running_mean', 'running_var')
_BATCH_NORM += ('num_batches_tracked',)


def hf_key_pairs(config: Mapping) -> list[KeyPair]:
    """Every tensor of transformers' ``GroupViTModel`` of ``config`` (its
    ``to_dict()``, ``config.json`` with the defaults filled in) and our name
    for it."""
    vision, text = config['vision_config'], config['text_config']
    depths = list(vision['depths'])
    groups = list(vision['num_group_tokens'])
    pairs: list[KeyPair] = []
    embed = 'vision_model.embeddings'
    _same(
        pairs,
        f'{embed}.patch_embeddings.projection',
        'backbone.patch_embed.projection',
    )
    _same(pairs, f'{embed}.layernorm', 'backbone.patch_embed.norm')
    pairs.append(
        KeyPair((f'{embed}.position_embeddings',), 'backbone.pos_embed')
    )
    for i, depth in enumerate(depths):
        hf, ours = f'vision_model.encoder.stages.{i}', f'backbone.layers.{i}'
        if groups[i] > 0:
            pairs.append(
                KeyPair((f'{hf}.group_token',), f'{ours}.group_token')
            )
        if i > 0 and groups[i] > 0 and groups[i - 1] > 0:
            for part in ('0', '1.fc1', '1.fc2'):
                _same(
                    pairs,
                    f'{hf}.group_projector.{part}',
                    f'{ours}.group_projector.{part}',
                )
        for j in range(depth):
            hl, ol = f'{hf}.layers.{j}', f'{ours}.blocks.{j}'
            _same(pairs, f'{hl}.layer_norm1', f'{ol}.ln1')
            _stacked_qkv(
                pairs,
                f'{hl}.self_attn',
                f'{ol}.attn.qkv.weight',
                f'{ol}.attn.qkv.bias',
            )
            _same(pairs, f'{hl}.self_attn.out_proj', f'{ol}.attn.proj')
            _same(pairs, f'{hl}.layer_norm2', f'{ol}.ln2')
            _same(pairs, f'{hl}.mlp.fc1', f'{ol}.ffn.layers.0.0')
            _same(pairs, f'{hl}.mlp.fc2', f'{ol}.ffn.layers.1')
        if groups[i] > 0:
            hd, od = f'{hf}.downsample', f'{ours}.downsample'
            for same in (
                'norm_tokens',
                'mlp_inter.fc1',
                'mlp_inter.fc2',
                'norm_post_tokens',
                'norm_x',
                'pre_assign_attn.attn.q_proj',
                'pre_assign_attn.attn.k_proj',
                'pre_assign_attn.attn.v_proj',
                'pre_assign_attn.norm2',
                'pre_assign_attn.norm_post',
                'assign.q_proj',
                'assign.k_proj',
                'assign.v_proj',
                'assign.proj',
                'norm_new_x',
            ):
                _same(pairs, f'{hd}.{same}', f'{od}.{same}')
            for hf_name, our_name in (
                ('pre_assign_attn.attn.out_proj', 'pre_assign_attn.attn.proj'),
                ('pre_assign_attn.mlp.fc1', 'pre_assign_attn.mlp.layers.0.0'),
                ('pre_assign_attn.mlp.fc2', 'pre_assign_attn.mlp.layers.1'),
                ('mlp_channels.fc1', 'mlp_channels.layers.0.0'),
                ('mlp_channels.fc2', 'mlp_channels.layers.1'),
            ):
                _same(pairs, f'{hd}.{hf_name}', f'{od}.{our_name}')
    _same(pairs, 'vision_model.layernorm', 'backbone.norm')

    pairs.append(
        KeyPair(
            ('text_model.embeddings.token_embedding.weight',),
            'text_encoder.token_embedding.weight',
        )
    )
    pairs.append(
        KeyPair(
            ('text_model.embeddings.position_embedding.weight',),
            'text_encoder.positional_embedding',
        )
    )
    for j in range(text['num_hidden_layers']):
        hl = f'text_model.encoder.layers.{j}'
        ol = f'text_encoder.transformer.resblocks.{j}'
        _stacked_qkv(
            pairs,
            f'{hl}.self_attn',
            f'{ol}.attn.in_proj_weight',
            f'{ol}.attn.in_proj_bias',
        )
        _same(pairs, f'{hl}.self_attn.out_proj', f'{ol}.attn.out_proj')
        _same(pairs, f'{hl}.layer_norm1', f'{ol}.ln_1')
        _same(pairs, f'{hl}.layer_norm2', f'{ol}.ln_2')
        _same(pairs, f'{hl}.mlp.fc1', f'{ol}.mlp.c_fc')
        _same(pairs, f'{hl}.mlp.fc2', f'{ol}.mlp.c_proj')
    _same(pairs, 'text_model.final_layer_norm', 'text_encoder.ln_final')

    for hf, ours in (
        ('visual_projection', 'image_projector'),
        ('text_projection', 'text_projector'),
    ):
        _same(pairs, f'{hf}.0', f'{ours}.linear_hidden.0')
        _same(pairs, f'{hf}.1', f'{ours}.linear_hidden.1', _BATCH_NORM)
        _same(pairs, f'{hf}.3', f'{ours}.linear_out')
    pairs.append(KeyPair(('logit_scale',), 'logit_scale'))
    return pairs


def is_training_only(key: str) -> bool:
    """Whether our ``key`` is dropped on export (see the module docstring)."""
    return key in TRAINING_ONLY_KEYS or key.startswith(TRAINING_ONLY_PREFIXES)


# --------------------------------------------------------------------------
# transformers -> ours
# --------------------------------------------------------------------------


def convert_hf_state_dict_with_report(
    hf_state: Mapping[str, torch.Tensor],
    config: Mapping,
    reference: Mapping[str, torch.Tensor | torch.Size] | None = None,
    strict: bool = True,
    source: str = '<folder>',
    multi_label_logit_scale: float | None = None,
) -> ConversionReport:
    """Rename transformers' GroupViT tensors into our segmentor's layout.

    Args:
        hf_state: ``GroupViTModel``'s state dict.
        config: its config as a dict (``GroupViTConfig.to_dict()``).
        reference: our model's state dict (or key -> shape): every tensor
            must land on one of its keys with the same shape, and every key
            must be filled (``multi_label_logit_scale`` from
            ``logit_scale``).
        strict: raise on tensors the config does not account for, on
            tensors the config implies but ``hf_state`` lacks, and on
            unexpected or unfilled keys; ``False`` warns instead (e.g.
            MixReorg's ``mixer.*``, left unfilled).
        source: the folder, for messages.
        multi_label_logit_scale: our multi-label temperature, where the
            folder kept it (None: a copy of ``logit_scale``).

    Returns:
        A :class:`~.groupvit_checkpoint.ConversionReport`; ``renamed``
        gives the transformers names (``q + k + v`` for stacked ones).

    Raises:
        GroupViTConversionError: naming every key at fault.
    """
    report = ConversionReport()
    known: set[str] = set()
    absent: list[str] = []
    for pair in hf_key_pairs(config):
        known.update(pair.hf)
        found = [hf_state.get(name) for name in pair.hf]
        lacking = [n for n, t in zip(pair.hf, found, strict=True) if t is None]
        if lacking:
            absent.extend(lacking)
            continue
        for name, tensor in zip(pair.hf, found, strict=True):
            if not isinstance(tensor, torch.Tensor):
                raise GroupViTConversionError(
                    f'{source}: "{name}" is a {type(tensor).__name__}, not '
                    'a tensor'
                )
        value = found[0] if len(found) == 1 else torch.cat(found, dim=0)
        report.state_dict[pair.ours] = value
        report.renamed[pair.ours] = ' + '.join(pair.hf)
    report.unknown = [key for key in hf_state if key not in known]
    if absent and strict:
        raise GroupViTConversionError(
            f'cannot convert {source}: {len(absent)} tensors its '
            f'{CONFIG_FILE} implies are not in its weights: '
            + ', '.join(absent)
        )
    scale = report.state_dict.get('logit_scale')
    if (
        reference is not None
        and 'multi_label_logit_scale' in reference
        and scale is not None
    ):
        if multi_label_logit_scale is None:
            report.state_dict['multi_label_logit_scale'] = scale.clone()
            report.renamed['multi_label_logit_scale'] = 'logit_scale (a copy)'
        else:
            report.state_dict['multi_label_logit_scale'] = torch.tensor(
                multi_label_logit_scale, dtype=scale.dtype
            )
            report.renamed['multi_label_logit_scale'] = (
                f'{SAFETENSORS_FILE} metadata {MULTI_LABEL_SCALE_METADATA}'
            )
    return check_conversion(
        report, reference, strict=strict, source=source, origin='transformers'
    )


def _sizes(value) -> tuple:
    """An int or a sequence of ints as a tuple (``224`` -> ``(224, 224)``
    for the two image sides)."""
    if isinstance(value, int):
        return (value, value)
    return tuple(value)


#: Fields of ``config.json`` that change what the weights compute, and the
#: option of ours each one is compared with (in messages).
_COMPARED = (
    ('vision_config', 'hidden_size', 'backbone.embed_dims'),
    ('vision_config', 'intermediate_size', '4 * backbone.embed_dims'),
    ('vision_config', 'depths', 'backbone.depths'),
    ('vision_config', 'num_group_tokens', 'backbone.num_group_tokens'),
    ('vision_config', 'num_output_groups', 'backbone.num_output_groups'),
    ('vision_config', 'num_attention_heads', 'backbone.num_heads'),
    ('vision_config', 'image_size', 'backbone.img_size'),
    ('vision_config', 'patch_size', 'backbone.patch_size'),
    ('vision_config', 'num_channels', 'backbone.in_channels'),
    ('vision_config', 'hidden_act', "our GroupViT's GELU"),
    ('vision_config', 'layer_norm_eps', 'our LayerNorms'),
    ('vision_config', 'assign_eps', "our grouping block's 1"),
    ('vision_config', 'assign_mlp_ratio', "our grouping block's MLPs"),
    ('text_config', 'vocab_size', 'text_encoder.vocab_size'),
    ('text_config', 'hidden_size', 'text_encoder.width'),
    ('text_config', 'intermediate_size', 'text_encoder.mlp_ratio'),
    ('text_config', 'num_hidden_layers', 'text_encoder.layers'),
    ('text_config', 'num_attention_heads', 'text_encoder.heads'),
    ('text_config', 'max_position_embeddings', 'text_encoder.context_length'),
    ('text_config', 'hidden_act', 'text_encoder.quick_gelu'),
    ('text_config', 'layer_norm_eps', 'our LayerNorms'),
    ('text_config', 'eos_token_id', 'our pooling at the largest token id'),
    (None, 'projection_dim', 'image_projector / text_projector out_channels'),
    (
        None,
        'projection_intermediate_dim',
        'image_projector / text_projector hidden_channels',
    ),
)


def _comparable(section, key, value, stages):
    if key in ('image_size', 'patch_size'):
        return _sizes(value)
    if key == 'num_output_groups':
        # the last stage has no grouping block: transformers ignores it
        return tuple(value)[: stages - 1]
    if key == 'eos_token_id' and value == LEGACY_ARGMAX_EOS_TOKEN_ID:
        return CLIP_EOS_TOKEN_ID
    if isinstance(value, list | tuple):
        return tuple(value)
    return value


def hf_config_mismatches(found: Mapping, expected: Mapping) -> list[str]:
    """``config.json`` fields (``found``, defaults filled in) that differ
    from what our model computes (``expected``, from
    :func:`groupvit_hf_config`), each as ``'field=found (ours: value,
    option)'``."""
    stages = len(expected['vision_config']['depths'])
    out = []
    for section, key, option in _COMPARED:
        have = found if section is None else found.get(section, {})
        want = expected if section is None else expected[section]
        if key not in have:
            out.append(f'{section}.{key} is not set ({option})')
            continue
        got = _comparable(section, key, have[key], stages)
        ours = _comparable(section, key, want[key], stages)
        if got != ours:
            name = key if section is None else f'{section}.{key}'
            out.append(f'{name}={have[key]!r} (ours: {want[key]!r}, {option})')
    return out


def read_hf_config(folder: str | os.PathLike) -> dict:
    """``config.json`` of a transformers GroupViT folder, transformers'
    defaults filled in (``GroupViTConfig.from_pretrained(...).to_dict()``).

    Raises:
        GroupViTConversionError: no ``config.json``, or another model type.
    """
    path = osp.join(os.fspath(folder), CONFIG_FILE)
    if not osp.isfile(path):
        raise GroupViTConversionError(f'{folder}: no {CONFIG_FILE}')
    with open(path, encoding='utf-8') as f:
        raw = json.load(f)
    model_type = raw.get('model_type') if isinstance(raw, dict) else None
    if model_type != MODEL_TYPE:
        raise GroupViTConversionError(
            f'{path}: model_type is {model_type!r}, not {MODEL_TYPE!r} '
            "(transformers' GroupViTModel)"
        )
    transformers = _require('transformers')
    return transformers.GroupViTConfig.from_pretrained(
        os.fspath(folder)
    ).to_dict()


def _weight_files(folder: str) -> list[str]:
    """The weight files of a folder, by transformers' file names (the
    safetensors ones first)."""
    for name in (SAFETENSORS_FILE, PYTORCH_FILE):
        index = osp.join(folder, name + INDEX_SUFFIX)
        if osp.isfile(index):
            with open(index, encoding='utf-8') as f:
                weight_map = json.load(f).get('weight_map', {})
            shards = sorted(set(weight_map.values()))
            if not shards:
                raise GroupViTConversionError(f'{index}: empty weight_map')
            return [osp.join(folder, shard) for shard in shards]
        if osp.isfile(osp.join(folder, name)):
            return [osp.join(folder, name)]
    raise GroupViTConversionError(
        f'{folder}: no weights ({SAFETENSORS_FILE}, {PYTORCH_FILE}, or '
        f'either with {INDEX_SUFFIX} and its shards)'
    )


def read_hf_state_dict(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a transformers folder. safetensors files hold only
    tensors; ``.bin`` files are loaded weights-only.

    Raises:
        GroupViTConversionError: no weight file, or a key in two shards.
        UnsafeCheckpointError: a ``.bin`` file holds pickled objects.
    """
    folder = os.fspath(folder)
    state: dict[str, torch.Tensor] = {}
    for path in _weight_files(folder):
        if not osp.isfile(path):
            raise GroupViTConversionError(f'{path}: shard not found')
        if path.endswith('.safetensors'):
            part = _require('safetensors.torch').load_file(path)
        else:
            try:
                part = load_weights(path, map_location='cpu')
            except UnsafeCheckpointError as err:
                raise UnsafeCheckpointError(
                    f'{err}\nconvert the folder to safetensors where you '
                    'trust it, or ask its publisher for model.safetensors'
                ) from None
        twice = sorted(set(part) & set(state))
        if twice:
            raise GroupViTConversionError(
                f'{path}: keys already read from another shard: '
                + ', '.join(twice)
            )
        state.update(part)
    return state


def read_multi_label_logit_scale(folder: str | os.PathLike) -> float | None:
    """Our multi-label temperature kept in ``model.safetensors``' metadata
    by :func:`model_to_hf_folder` (None: not there).

    Raises:
        GroupViTConversionError: the entry is not a number.
    """
    path = osp.join(os.fspath(folder), SAFETENSORS_FILE)
    if not osp.isfile(path):
        return None
    safe_open = _require('safetensors').safe_open
    with safe_open(path, framework='pt') as f:
        value = (f.metadata() or {}).get(MULTI_LABEL_SCALE_METADATA)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise GroupViTConversionError(
            f'{path}: metadata {MULTI_LABEL_SCALE_METADATA}={value!r} is not '
            'a number'
        ) from None


def hf_folder_to_mmengine_checkpoint(
    folder: str | os.PathLike,
    reference: Mapping[str, torch.Tensor | torch.Size],
    expected_config: Mapping,
    strict: bool = True,
) -> tuple[dict, ConversionReport]:
    """A transformers GroupViT folder as our MMEngine checkpoint.

    Args:
        folder: holds ``config.json`` and the weights.
        reference: our model's state dict (or key -> shape).
        expected_config: :func:`groupvit_hf_config` of our model: the folder's
            config must compute the same function (sizes, heads,
            activations, normalisation, pooling).
        strict: see :func:`convert_hf_state_dict_with_report`; config
            mismatches always raise.

    Returns:
        ``{'meta': ..., 'state_dict': ...}`` and the conversion report.

    Raises:
        GroupViTConversionError: naming every field or key at fault.
    """
    folder = os.fspath(folder)
    config = read_hf_config(folder)
    mismatches = hf_config_mismatches(config, expected_config)
    if mismatches:
        raise GroupViTConversionError(
            f'{osp.join(folder, CONFIG_FILE)} describes another model than '
            'the config: ' + '; '.join(mismatches)
        )
    report = convert_hf_state_dict_with_report(
        read_hf_state_dict(folder),
        config,
        reference=reference,
        strict=strict,
        source=folder,
        multi_label_logit_scale=read_multi_label_logit_scale(folder),
    )
    meta = dict(
        converted_from=osp.basename(osp.normpath(folder)),
        source_format='transformers GroupViTModel',
        converter='tools/model_converters/groupvit2mmseg.py',
    )
    version = config.get('transformers_version')
    if isinstance(version, str):
        meta['transformers_version'] = version
    return dict(meta=meta, state_dict=report.state_dict), report


# --------------------------------------------------------------------------
# ours -> transformers
# --------------------------------------------------------------------------


def _unrepresentable(option: str, why: str) -> GroupViTConversionError:
    return GroupViTConversionError(
        f"transformers' GroupViT cannot represent {option}: {why}"
    )


def groupvit_hf_config(model) -> dict:
    """transformers' ``GroupViTConfig`` (as keyword arguments) of our
    segmentor ``model``, a built ``TextSupervisedSegmentor`` with a GroupViT
    backbone, an ``OpenCLIPTextEncoder`` and ``ProjectionMLP`` projectors
    (read through their public attributes).

    Raises:
        GroupViTConversionError: an option transformers' GroupViT has no
            place for, named with the reason.
    """
    backbone, text = model.backbone, model.text_encoder
    if backbone.stem_channels is not None:
        raise _unrepresentable(
            f'backbone.stem_channels={list(backbone.stem_channels)}',
            'it embeds patches with one stride-p convolution',
        )
    if backbone.segment_readout != 'group':
        raise _unrepresentable(
            f'backbone.segment_readout={backbone.segment_readout!r}',
            "its segments are the last stage's tokens (segment_readout="
            "'group')",
        )
    if not backbone.hard_assignment:
        raise _unrepresentable(
            'backbone.hard_assignment=False',
            'its grouping blocks gather with one-hot assignments at test time',
        )
    heads = set(backbone.num_heads)
    if len(heads) != 1:
        raise _unrepresentable(
            f'backbone.num_heads={list(backbone.num_heads)}',
            'every stage has the same number of heads',
        )
    groups, outputs = backbone.num_group_tokens, backbone.num_output_groups
    for i in range(1, len(groups)):
        if groups[i] > 0 and groups[i - 1] != outputs[i - 1]:
            raise _unrepresentable(
                f'backbone.num_group_tokens={list(groups)} with '
                f'num_output_groups={list(outputs)}',
                f'stage {i} projects its group tokens from '
                f'num_output_groups[{i - 1}] tokens, so stage {i - 1} must '
                'have as many group tokens as output groups',
            )
    if text.output_dim is not None:
        raise _unrepresentable(
            f'text_encoder.output_dim={text.output_dim}',
            'its text model has no projection matrix (the projection MLP '
            'follows)',
        )
    if text.vocab_size != CLIP_VOCAB_SIZE:
        raise _unrepresentable(
            f'text_encoder.vocab_size={text.vocab_size}',
            f'it pools at the end-of-text token {CLIP_EOS_TOKEN_ID} and '
            f"ours at the largest id; they agree on CLIP's "
            f'{CLIP_VOCAB_SIZE} tokens',
        )
    hidden = {
        model.image_projector.linear_hidden[0].out_features,
        model.text_projector.linear_hidden[0].out_features,
    }
    if len(hidden) != 1:
        raise _unrepresentable(
            'image_projector and text_projector of different '
            f'hidden_channels ({sorted(hidden)})',
            'one projection_intermediate_dim serves both',
        )
    resblock = text.transformer.resblocks[0]
    height, width = backbone.img_size
    return dict(
        vision_config=dict(
            hidden_size=backbone.embed_dims,
            intermediate_size=4 * backbone.embed_dims,
            depths=list(backbone.depths),
            num_hidden_layers=sum(backbone.depths),
            num_group_tokens=list(groups),
            # one entry per stage; the last stage has no grouping block
            num_output_groups=list(outputs) + [outputs[-1]],
            num_attention_heads=heads.pop(),
            image_size=height if height == width else [height, width],
            patch_size=backbone.patch_size,
            num_channels=backbone.in_channels,
            hidden_act='gelu',
            layer_norm_eps=LAYER_NORM_EPS,
            assign_eps=ASSIGN_EPS,
            assign_mlp_ratio=list(ASSIGN_MLP_RATIO),
        ),
        text_config=dict(
            vocab_size=text.vocab_size,
            hidden_size=text.transformer.width,
            intermediate_size=resblock.mlp.c_fc.out_features,
            num_hidden_layers=text.transformer.layers,
            num_attention_heads=text.heads,
            max_position_embeddings=text.context_length,
            hidden_act='quick_gelu' if text.quick_gelu else 'gelu',
            layer_norm_eps=LAYER_NORM_EPS,
            bos_token_id=CLIP_BOS_TOKEN_ID,
            eos_token_id=CLIP_EOS_TOKEN_ID,
        ),
        projection_dim=model.image_projector.out_channels,
        projection_intermediate_dim=hidden.pop(),
        logit_scale_init_value=float(model.logit_scale.detach()),
    )


def to_hf_state_dict(
    state: Mapping[str, torch.Tensor], config: Mapping
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Our state dict in transformers' layout.

    Args:
        state: our segmentor's state dict.
        config: :func:`groupvit_hf_config` of the model.

    Returns:
        transformers' state dict (contiguous tensors, none sharing memory,
        as safetensors wants), and the training-only keys dropped.

    Raises:
        GroupViTConversionError: keys of ``state`` with no place in
            transformers' layout, or keys it lacks; named.
    """
    out: dict[str, torch.Tensor] = {}
    mapped, missing = set(), []
    for pair in hf_key_pairs(config):
        mapped.add(pair.ours)
        value = state.get(pair.ours)
        if value is None:
            missing.append(pair.ours)
            continue
        parts = (value,) if len(pair.hf) == 1 else value.chunk(3, dim=0)
        for name, part in zip(pair.hf, parts, strict=True):
            out[name] = part.detach().clone().contiguous()
    dropped = [k for k in state if k not in mapped and is_training_only(k)]
    unknown = [k for k in state if k not in mapped and not is_training_only(k)]
    problems = []
    if unknown:
        problems.append(
            f"{len(unknown)} keys transformers' GroupViT has no place for: "
            + ', '.join(unknown)
        )
    if missing:
        problems.append(
            f'{len(missing)} keys the state dict lacks: ' + ', '.join(missing)
        )
    if problems:
        raise GroupViTConversionError(
            'cannot export to transformers: ' + ' | '.join(problems)
        )
    return out, dropped


def write_hf_folder(
    folder: str | os.PathLike,
    config: Mapping,
    hf_state: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``config.json`` (``GroupViTConfig(**config)``, architecture
    ``GroupViTModel``) and ``model.safetensors`` into ``folder``."""
    transformers = _require('transformers')
    save_file = _require('safetensors.torch').save_file
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    hf_config = transformers.GroupViTConfig(**config)
    hf_config.architectures = ['GroupViTModel']
    hf_config.save_pretrained(folder)
    save_file(
        dict(hf_state),
        osp.join(folder, SAFETENSORS_FILE),
        metadata={'format': 'pt', **(metadata or {})},
    )


def model_to_hf_folder(
    model, folder: str | os.PathLike, metadata: Mapping[str, str] | None = None
) -> list[str]:
    """Write our segmentor ``model`` as a transformers GroupViT folder.

    Returns:
        The training-only keys left out of the weights (MixReorg's
        ``mixer.*``; ``multi_label_logit_scale``, kept in the metadata).

    Raises:
        GroupViTConversionError: see :func:`groupvit_hf_config` and
            :func:`to_hf_state_dict`.
    """
    config = groupvit_hf_config(model)
    state = model.state_dict()
    hf_state, dropped = to_hf_state_dict(state, config)
    metadata = dict(metadata or {})
    kept = state.get('multi_label_logit_scale')
    if kept is not None:
        metadata[MULTI_LABEL_SCALE_METADATA] = repr(float(kept))
    write_hf_folder(folder, config, hf_state, metadata)
    return dropped
