"""Official GroupViT checkpoints in this package's layout.

NVlabs/GroupViT releases its weights as a ``torch.save`` of a dict whose
``model`` entry is the state dict of its ``MultiLabelContrastive`` (next to
training state: ``optimizer``, ``lr_scheduler``, ``epoch``, ``config``...).
:func:`convert_groupvit_state_dict` renames that state dict, key by key,
into the state dict of :class:`~mixreorg_mmseg.models.segmentors.
TextSupervisedSegmentor` built from ``configs/groupvit_vit-s_cc12m.py``;
:func:`groupvit_to_mmengine_checkpoint` wraps it as an MMEngine checkpoint
(``{'meta': ..., 'state_dict': ...}``) that ``load_from=``,
``tools/test.py`` and ``mmseg.apis.init_model`` read.

What maps to what (official -> ours, ``i`` stage, ``j`` layer)::

    img_encoder.patch_embed.proj / .norm     backbone.patch_embed.projection
                                             / .norm   (mmcv PatchEmbed)
    img_encoder.pos_embed, .norm             backbone.pos_embed, .norm
    img_encoder.layers.i.group_token         backbone.layers.i.group_token
    img_encoder.layers.i.blocks.j.           backbone.layers.i.blocks.j.
        norm1, attn.qkv, attn.proj, norm2,       ln1, attn.qkv, attn.proj, ln2,
        mlp.fc1, mlp.fc2                         ffn.layers.0.0, ffn.layers.1
    img_encoder.layers.i.downsample.         backbone.layers.i.downsample.
        norm_tokens, mlp_inter.fc1/fc2,          (same names)
        norm_post_tokens, norm_x,
        pre_assign_attn.{norm_post, norm2,
            attn.q_proj/k_proj/v_proj/proj},
        assign.q_proj/k_proj/v_proj/proj,
        norm_new_x
        pre_assign_attn.mlp.fc1 / fc2            pre_assign_attn.mlp.layers.0.0
                                                 / .layers.1  (mmcv FFN)
        mlp_channels.fc1 / fc2                   mlp_channels.layers.0.0 / .1
    img_encoder.layers.i.group_projector.    backbone.layers.i.group_projector.
        0, 1.fc1, 1.fc2                          (same names)
    text_encoder.*                           text_encoder.*  (OpenAI CLIP
                                             names on both sides)
    img_projector.linear_hidden.k (Conv1d,   image_projector.linear_hidden.k
        weight [out, in, 1])                     (Linear, weight [out, in])
    img_projector.linear_hidden.k+1          image_projector.linear_hidden.k+1
        (BatchNorm incl. running stats)          (same)
    img_projector.linear_out (Conv1d)        image_projector.linear_out
    text_projector.*                         text_projector.*  (as above)
    logit_scale, multi_label_logit_scale     (same names)

Both implementations compute the same functions with these weights (same
token layout of the fused ``qkv``, Conv1d with kernel 1 is a Linear, QuickGELU
in the text encoder on both sides), which the slow test in
``tests/test_groupvit_converter.py`` checks against the official code.

MixReorg: its test-time network is GroupViT's, so the converted file also
initialises ``configs/mixreorg_vit-s_cc12m.py``; the only keys it leaves
unfilled are the training-only ``mixer.*`` weights, which keep their
initialisation. Load it there with ``strict=False`` (what MMEngine's
``load_from`` does), or check it with ``reference=`` that model and
``strict=False`` (``--allow-missing`` in the converter CLI).

This module must not import ``mmseg`` (see :mod:`mixreorg_mmseg.utils`).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from .safe_checkpoint import UnsafeCheckpointError, load_weights

#: The release format keeps the model's state dict under this key.
OFFICIAL_MODEL_KEY = 'model'
#: Prefix DDP's wrapper adds to every key.
DDP_PREFIX = 'module.'
#: Top-level prefixes of an official ``MultiLabelContrastive`` state dict.
OFFICIAL_ROOTS = ('img_encoder.', 'text_encoder.', 'img_projector.')


class GroupViTConversionError(ValueError):
    """An official GroupViT state dict does not convert cleanly; the message
    names every key at fault."""


# --------------------------------------------------------------------------
# the key map
# --------------------------------------------------------------------------

_W = r'(weight|bias)'
_STAGE = r'img_encoder\.layers\.(\d+)\.'
_OURS_STAGE = r'backbone.layers.\1.'
_BLOCK = _STAGE + r'blocks\.(\d+)\.'
_OURS_BLOCK = _OURS_STAGE + r'blocks.\2.'
_DOWN = _STAGE + r'downsample\.'
_OURS_DOWN = _OURS_STAGE + 'downsample.'
_RESBLOCK = r'text_encoder\.transformer\.resblocks\.(\d+)\.'
_OURS_RESBLOCK = r'text_encoder.transformer.resblocks.\1.'
_BN_ENTRY = r'(weight|bias|running_mean|running_var|num_batches_tracked)'


def _conv1d_as_linear(tensor: torch.Tensor, key: str) -> torch.Tensor:
    """Conv1d weight ``[out, in, 1]`` -> Linear weight ``[out, in]``."""
    if tensor.dim() != 3 or tensor.shape[2] != 1:
        raise GroupViTConversionError(
            f'"{key}" should be a Conv1d weight of shape [out, in, 1] '
            f'(kernel size 1), got {tuple(tensor.shape)}'
        )
    return tensor.squeeze(2)


@dataclass(frozen=True)
class _Rule:
    """Official keys matching ``pattern`` (whole key) become ``target``
    (``re`` template), their values ``transform(value, key)``; ``check``
    may reject a match (e.g. a projector index that holds no weights)."""

    pattern: re.Pattern
    target: str
    transform: Callable[[torch.Tensor, str], torch.Tensor] | None = None
    check: Callable[[re.Match], bool] | None = None


def _rule(pattern, target, transform=None, check=None) -> _Rule:
    return _Rule(re.compile(pattern), target, transform, check)


def _projector_index(residue: int) -> Callable[[re.Match], bool]:
    """Official ProjectMLP ``linear_hidden`` repeats (Conv1d, BatchNorm1d,
    ReLU): index % 3 tells which."""
    return lambda match: int(match.group(2)) % 3 == residue


_PROJECTOR = r'(img|text)_projector\.'


def _projector_target(suffix: str) -> str:
    # ``img_projector`` -> ``image_projector``; ``text_projector`` stays
    return r'\1_projector.' + suffix


#: Every official key matches exactly one rule (tested); anything else is
#: reported as unknown.
RULES: tuple[_Rule, ...] = (
    # ---- image encoder: patch embedding, position, final norm
    _rule(
        rf'img_encoder\.patch_embed\.proj\.{_W}',
        r'backbone.patch_embed.projection.\1',
    ),
    _rule(
        rf'img_encoder\.patch_embed\.norm\.{_W}',
        r'backbone.patch_embed.norm.\1',
    ),
    _rule(r'img_encoder\.pos_embed', 'backbone.pos_embed'),
    _rule(rf'img_encoder\.norm\.{_W}', r'backbone.norm.\1'),
    # ---- stages: group tokens and their projection from the last stage
    _rule(_STAGE + 'group_token', _OURS_STAGE + 'group_token'),
    _rule(
        _STAGE + rf'group_projector\.0\.{_W}',
        _OURS_STAGE + r'group_projector.0.\2',
    ),
    _rule(
        _STAGE + rf'group_projector\.1\.(fc1|fc2)\.{_W}',
        _OURS_STAGE + r'group_projector.1.\2.\3',
    ),
    # ---- transformer layers: timm-style AttnBlock -> mmpretrain's
    # TransformerEncoderLayer
    _rule(_BLOCK + rf'norm1\.{_W}', _OURS_BLOCK + r'ln1.\3'),
    _rule(_BLOCK + rf'attn\.qkv\.{_W}', _OURS_BLOCK + r'attn.qkv.\3'),
    _rule(_BLOCK + rf'attn\.proj\.{_W}', _OURS_BLOCK + r'attn.proj.\3'),
    _rule(_BLOCK + rf'norm2\.{_W}', _OURS_BLOCK + r'ln2.\3'),
    _rule(_BLOCK + rf'mlp\.fc1\.{_W}', _OURS_BLOCK + r'ffn.layers.0.0.\3'),
    _rule(_BLOCK + rf'mlp\.fc2\.{_W}', _OURS_BLOCK + r'ffn.layers.1.\3'),
    # ---- grouping blocks
    _rule(
        _DOWN + rf'(norm_tokens|norm_post_tokens|norm_x|norm_new_x)\.{_W}',
        _OURS_DOWN + r'\2.\3',
    ),
    _rule(
        _DOWN + rf'mlp_inter\.(fc1|fc2)\.{_W}',
        _OURS_DOWN + r'mlp_inter.\2.\3',
    ),
    _rule(
        _DOWN + rf'pre_assign_attn\.(norm_post|norm2)\.{_W}',
        _OURS_DOWN + r'pre_assign_attn.\2.\3',
    ),
    _rule(
        _DOWN + rf'pre_assign_attn\.attn\.(q_proj|k_proj|v_proj|proj)\.{_W}',
        _OURS_DOWN + r'pre_assign_attn.attn.\2.\3',
    ),
    _rule(
        _DOWN + rf'pre_assign_attn\.mlp\.fc1\.{_W}',
        _OURS_DOWN + r'pre_assign_attn.mlp.layers.0.0.\2',
    ),
    _rule(
        _DOWN + rf'pre_assign_attn\.mlp\.fc2\.{_W}',
        _OURS_DOWN + r'pre_assign_attn.mlp.layers.1.\2',
    ),
    _rule(
        _DOWN + rf'assign\.(q_proj|k_proj|v_proj|proj)\.{_W}',
        _OURS_DOWN + r'assign.\2.\3',
    ),
    _rule(
        _DOWN + rf'mlp_channels\.fc1\.{_W}',
        _OURS_DOWN + r'mlp_channels.layers.0.0.\2',
    ),
    _rule(
        _DOWN + rf'mlp_channels\.fc2\.{_W}',
        _OURS_DOWN + r'mlp_channels.layers.1.\2',
    ),
    # ---- text encoder: OpenAI CLIP's names on both sides
    _rule(
        r'text_encoder\.(positional_embedding|token_embedding\.weight'
        r'|text_projection)',
        r'text_encoder.\1',
    ),
    _rule(rf'text_encoder\.ln_final\.{_W}', r'text_encoder.ln_final.\1'),
    _rule(
        _RESBLOCK + rf'(ln_1|ln_2)\.{_W}',
        _OURS_RESBLOCK + r'\2.\3',
    ),
    _rule(
        _RESBLOCK + r'attn\.(in_proj_weight|in_proj_bias|out_proj\.weight'
        r'|out_proj\.bias)',
        _OURS_RESBLOCK + r'attn.\2',
    ),
    _rule(
        _RESBLOCK + rf'mlp\.(c_fc|c_proj)\.{_W}',
        _OURS_RESBLOCK + r'mlp.\2.\3',
    ),
    # ---- projection MLPs: Conv1d (kernel 1) -> Linear, BatchNorm as is
    _rule(
        _PROJECTOR + r'linear_hidden\.(\d+)\.weight',
        _projector_target(r'linear_hidden.\2.weight'),
        transform=_conv1d_as_linear,
        check=_projector_index(0),
    ),
    _rule(
        _PROJECTOR + r'linear_hidden\.(\d+)\.bias',
        _projector_target(r'linear_hidden.\2.bias'),
        check=_projector_index(0),
    ),
    _rule(
        _PROJECTOR + rf'linear_hidden\.(\d+)\.{_BN_ENTRY}',
        _projector_target(r'linear_hidden.\2.\3'),
        check=_projector_index(1),
    ),
    _rule(
        _PROJECTOR + r'linear_out\.weight',
        _projector_target('linear_out.weight'),
        transform=_conv1d_as_linear,
    ),
    _rule(
        _PROJECTOR + r'linear_out\.bias', _projector_target('linear_out.bias')
    ),
    # ---- temperatures
    _rule(r'(logit_scale|multi_label_logit_scale)', r'\1'),
)


def _target_of(key: str) -> tuple[str, _Rule] | None:
    """Our name for official ``key`` and the rule that gives it, or None."""
    found = None
    for rule in RULES:
        match = rule.pattern.fullmatch(key)
        if match is None or (rule.check and not rule.check(match)):
            continue
        if found is not None:
            raise AssertionError(f'two rules match "{key}"')  # a bug here
        target = match.expand(rule.target)
        if target.startswith('img_projector.'):
            target = 'image' + target[len('img') :]
        found = (target, rule)
    return found


# --------------------------------------------------------------------------
# conversion
# --------------------------------------------------------------------------


@dataclass
class ConversionReport:
    """What :func:`convert_groupvit_state_dict` did.

    Attributes:
        state_dict: the converted tensors, our names.
        renamed: our name -> official name, for every converted tensor.
        unknown: official keys no rule maps (dropped).
        unexpected: mapped keys the reference does not have (dropped).
        missing: reference keys nothing filled.
    """

    state_dict: dict[str, torch.Tensor] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def official_state_dict(
    checkpoint: Mapping, source: str = '<checkpoint>'
) -> dict[str, torch.Tensor]:
    """The model state dict of an official GroupViT checkpoint.

    Accepts the release format (``checkpoint['model']``) or the state dict
    itself; strips DDP's ``module.`` prefix.

    Raises:
        GroupViTConversionError: no state dict with GroupViT's names, a
            non-tensor entry, or a key present with and without ``module.``;
            the message names the key and ``source``.
    """
    if not isinstance(checkpoint, Mapping):
        raise GroupViTConversionError(
            f'{source}: expected a dict, got {type(checkpoint).__name__}'
        )
    state = checkpoint
    if isinstance(checkpoint.get(OFFICIAL_MODEL_KEY), Mapping):
        state = checkpoint[OFFICIAL_MODEL_KEY]
    elif not any(
        isinstance(key, str)
        and key.removeprefix(DDP_PREFIX).startswith(OFFICIAL_ROOTS)
        for key in checkpoint
    ):
        shown = ', '.join(map(str, list(checkpoint)[:10]))
        hint = ''
        if 'state_dict' in checkpoint:
            hint = (
                " (a 'state_dict' entry: this looks like an MMEngine "
                'checkpoint, which needs no conversion)'
            )
        raise GroupViTConversionError(
            f'{source} is not an official GroupViT checkpoint: no '
            f"'{OFFICIAL_MODEL_KEY}' entry and no keys starting with "
            f'{", ".join(OFFICIAL_ROOTS)}; its top-level keys: {shown}{hint}'
        )
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise GroupViTConversionError(f'{source}: non-string key {key!r}')
        name = key.removeprefix(DDP_PREFIX)
        if not isinstance(value, torch.Tensor):
            raise GroupViTConversionError(
                f'{source}: "{key}" is a {type(value).__name__}, not a tensor'
            )
        if name in out:
            raise GroupViTConversionError(
                f'{source}: "{name}" is there both with and without the '
                f'"{DDP_PREFIX}" prefix'
            )
        out[name] = value
    return out


def _listing(keys) -> str:
    return ', '.join(keys)


def convert_groupvit_state_dict(
    official: Mapping,
    reference: Mapping[str, torch.Tensor | torch.Size] | None = None,
    strict: bool = True,
    source: str = '<checkpoint>',
) -> dict[str, torch.Tensor]:
    """Rename an official GroupViT state dict into our segmentor's layout.

    Args:
        official: the official checkpoint (``{'model': state_dict, ...}``)
            or its state dict, optionally with DDP's ``module.`` prefix.
        reference: our model's state dict (or key -> shape) to check
            against: every official key must land on one of its keys with
            the same shape, and every one of its keys must be filled. None
            checks only that every official key is known.
        strict: raise on unknown official keys, on keys the reference lacks
            and on reference keys left unfilled. ``False`` drops the first
            two and leaves the third unfilled, with a warning naming them
            (e.g. MixReorg's ``mixer.*``, see the module docstring). Shape
            mismatches always raise.
        source: name of the file, for messages.

    Returns:
        ``{our key: tensor}``; Conv1d weights of the projection MLPs are
        squeezed to Linear weights (views of the official tensors).

    Raises:
        GroupViTConversionError: naming every key at fault.
    """
    report = convert_groupvit_state_dict_with_report(
        official, reference, strict=strict, source=source
    )
    return report.state_dict


def convert_groupvit_state_dict_with_report(
    official: Mapping,
    reference: Mapping[str, torch.Tensor | torch.Size] | None = None,
    strict: bool = True,
    source: str = '<checkpoint>',
) -> ConversionReport:
    """:func:`convert_groupvit_state_dict`, returning a
    :class:`ConversionReport` (what was renamed, dropped, left unfilled)."""
    state = official_state_dict(official, source)
    report = ConversionReport()
    for key, value in state.items():
        found = _target_of(key)
        if found is None:
            report.unknown.append(key)
            continue
        target, rule = found
        if rule.transform is not None:
            value = rule.transform(value, key)
        report.state_dict[target] = value
        report.renamed[target] = key

    return check_conversion(
        report, reference, strict=strict, source=source, origin='official'
    )


def check_conversion(
    report: ConversionReport,
    reference: Mapping[str, torch.Tensor | torch.Size] | None,
    strict: bool,
    source: str,
    origin: str,
) -> ConversionReport:
    """Check converted tensors against our model, in place.

    Fills ``report.unexpected`` (converted keys ``reference`` lacks, then
    dropped) and ``report.missing`` (``reference`` keys left unfilled).

    Args:
        report: ``state_dict``, ``renamed`` and ``unknown`` filled in.
        reference: our model's state dict (or key -> shape); None checks
            only ``report.unknown``.
        strict: raise on unknown, unexpected or missing keys; ``False``
            warns, naming them.
        source: the file, for messages.
        origin: what the source keys are called in messages
            (``'official'``, ``'transformers'``).

    Raises:
        GroupViTConversionError: shapes differ (always), or any problem
            when ``strict``; the message names every key at fault.
    """
    mismatched = []
    if reference is not None:
        shapes = {
            key: tuple(value.shape if hasattr(value, 'shape') else value)
            for key, value in reference.items()
        }
        report.unexpected = [k for k in report.state_dict if k not in shapes]
        report.missing = [k for k in shapes if k not in report.state_dict]
        for key, value in report.state_dict.items():
            if key in shapes and tuple(value.shape) != shapes[key]:
                mismatched.append(
                    f'{report.renamed[key]} -> {key}: checkpoint '
                    f'{tuple(value.shape)} vs model {shapes[key]}'
                )
        for key in report.unexpected:
            del report.state_dict[key]

    if mismatched:
        raise GroupViTConversionError(
            f'{source}: shapes differ from the model (another '
            'architecture? check the config): ' + '; '.join(mismatched)
        )
    problems = _problems(report, origin)
    if problems and strict:
        raise GroupViTConversionError(
            f'cannot convert {source}: '
            + ' | '.join(problems)
            + ' | (strict=False / --allow-missing converts the rest)'
        )
    if problems:
        warnings.warn(
            f'converting {source}: ' + ' | '.join(problems), stacklevel=3
        )
    return report


def _problems(report: ConversionReport, origin: str) -> list[str]:
    problems = []
    if report.unknown:
        problems.append(
            f'{len(report.unknown)} {origin} keys this converter does not '
            f'know: {_listing(report.unknown)}'
        )
    if report.unexpected:
        problems.append(
            f'{len(report.unexpected)} converted keys the model does not '
            'have: '
            + _listing(
                f'{k} (from {report.renamed[k]})' for k in report.unexpected
            )
        )
    if report.missing:
        text = (
            f'{len(report.missing)} model keys the checkpoint does not '
            f'fill: {_listing(report.missing)}'
        )
        if all(k.startswith('mixer.') for k in report.missing):
            text += (
                " (MixReorg's training-only mixer: they keep their "
                'initialisation; load with strict=False)'
            )
        elif 'multi_label_logit_scale' in report.missing:
            text += (
                ' (no multi-label temperature: the checkpoint shares one; '
                'set share_logit_scale=True)'
            )
        problems.append(text)
    return problems


# --------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------


def load_groupvit_checkpoint(path: str | os.PathLike) -> Mapping:
    """Load an official GroupViT file weights-only.

    Raises:
        UnsafeCheckpointError: the file holds pickled objects besides the
            weights (the release format may store its training ``config``
            and other state next to ``model``); the message names the
            global and says how to proceed.
    """
    try:
        return load_weights(path, map_location='cpu')
    except UnsafeCheckpointError as err:
        src = os.fspath(path)
        raise UnsafeCheckpointError(
            f'{err}\nOfficial GroupViT files may keep Python objects (their '
            "training 'config', optimizer state...) next to the weights in "
            f"'{OFFICIAL_MODEL_KEY}'. Only the weights are converted, but a "
            'weights-only load refuses the whole file. If you trust its '
            'origin, rewrite it in the safe form first: python '
            f'tools/misc/sanitize_checkpoint.py --i-trust-this-file {src} '
            'SAFE.pth, then convert SAFE.pth. sanitize_checkpoint can only '
            "rewrite MMEngine's and numpy's objects; if it says an entry has "
            'no safe form (an OmegaConf config, for one), keep just the '
            'weights instead, once, where you trust the file: python -c '
            f'"import torch; torch.save(torch.load({src!r}, '
            f"weights_only=False)['{OFFICIAL_MODEL_KEY}'], 'SAFE.pth')\" "
            '(unpickling the config needs the package that defined it, '
            'e.g. omegaconf).'
        ) from None


def groupvit_to_mmengine_checkpoint(
    official: Mapping,
    reference: Mapping[str, torch.Tensor | torch.Size] | None = None,
    strict: bool = True,
    source: str = '<checkpoint>',
) -> tuple[dict, ConversionReport]:
    """Convert and wrap as ``{'meta': {...}, 'state_dict': {...}}``.

    ``meta`` records where the weights came from (``source``, the official
    ``epoch`` when the file has one) and the converter.
    """
    report = convert_groupvit_state_dict_with_report(
        official, reference, strict=strict, source=source
    )
    meta = dict(
        converted_from=os.path.basename(source),
        source_format='NVlabs/GroupViT MultiLabelContrastive',
        converter='tools/model_converters/groupvit2mmseg.py',
    )
    epoch = official.get('epoch') if isinstance(official, Mapping) else None
    if isinstance(epoch, int) and not isinstance(epoch, bool):
        meta['official_epoch'] = epoch
    return dict(meta=meta, state_dict=report.state_dict), report
