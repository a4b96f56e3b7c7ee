"""The CLIP-style text encoder of GroupViT (Xu et al., CVPR 2022, Sec. 3.2).

A causal transformer over BPE tokens whose output at the end-of-text token
is the sentence embedding. It subclasses open_clip's ``TextTransformer`` so
the parameters carry the names that open_clip, OpenAI CLIP and GroupViT's
text encoder use (``token_embedding.weight``, ``positional_embedding``,
``transformer.resblocks.N.{ln_1, attn, ln_2, mlp.c_fc, mlp.c_proj}``,
``ln_final``, optional ``text_projection``), and their weight files load
without renaming.

What differs from open_clip is the forward pass: it runs the transformer
only on the positions the pooled output can depend on (see
:meth:`OpenCLIPTextEncoder.forward`), which makes short prompts (``'a photo of
a dog.'``: 8 of 77 positions) several times cheaper.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
from mmseg.registry import MODELS
from open_clip.transformer import QuickGELU, TextTransformer
from torch import nn

from mixreorg_mmseg.utils.clip_tokens import clip_vocab_size, tokenize
from mixreorg_mmseg.utils.safe_checkpoint import load_weights

#: Key prefixes a checkpoint may carry in front of the text-tower names:
#: DDP's wrapper, our / GroupViT's segmentor attribute, open_clip's
#: ``CustomTextCLIP`` attribute. Only keys under a submodule prefix are
#: taken when one is present.
_WRAPPER_PREFIX = 'module.'
_SUBMODULE_PREFIXES = ('text_encoder.', 'text.')

#: Names of the text tower's parameters in an open_clip / CLIP state dict.
_TEXT_TOWER_ROOTS = (
    'token_embedding.',
    'positional_embedding',
    'transformer.',
    'ln_final.',
    'text_projection',
)

#: Entries of a full CLIP state dict that belong to other parts of the
#: model (image tower, temperature, the sizes OpenAI's files store).
_OTHER_TOWER_PREFIXES = ('visual.',)
_OTHER_TOWER_KEYS = frozenset(
    'logit_scale logit_bias input_resolution context_length vocab_size'.split()
)


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f'{name} must be an int, got {value!r}')
    if value < minimum:
        raise ValueError(f'{name} must be >= {minimum}, got {value}')
    return value


# Not ``CLIPTextEncoder``: MMSeg registers one (SAN's, another constructor).
@MODELS.register_module()
class OpenCLIPTextEncoder(TextTransformer):
    """Causal text transformer pooled at the end-of-text token.

    With the defaults it is GroupViT's text encoder: 12 layers, width 256,
    4 heads, 77 tokens, 49408 BPE tokens, no projection (the segmentor adds
    its own projection MLP); 22.15M parameters.

    Args:
        context_length: Longest token sequence L (positional embeddings).
        vocab_size: Token embedding rows. :meth:`tokenize` needs the CLIP
            vocabulary (49408).
        width: Residual width D of the transformer.
        layers: Number of residual attention blocks.
        heads: Attention heads; ``None`` gives ``width // 64`` as GroupViT
            and CLIP do. Must divide ``width``.
        mlp_ratio: Hidden width of each MLP, as a multiple of ``width``.
        output_dim: If set, a ``text_projection`` matrix ``[D, output_dim]``
            (open_clip's / CLIP's) maps the pooled token; ``None`` (GroupViT)
            returns the pooled token itself.
        quick_gelu: Use the sigmoid approximation of GELU
            (``x * sigmoid(1.702 x)``) that OpenAI CLIP and GroupViT were
            trained with; their weights need it. ``False`` uses
            ``nn.GELU`` (open_clip's LAION-trained models).
        pretrained: Path of an open_clip / CLIP / GroupViT weight file whose
            text tower is loaded at construction, see
            :meth:`load_pretrained`.
    """

    def __init__(
        self,
        context_length: int = 77,
        vocab_size: int = 49408,
        width: int = 256,
        layers: int = 12,
        heads: int | None = None,
        mlp_ratio: float = 4.0,
        output_dim: int | None = None,
        quick_gelu: bool = True,
        pretrained: str | os.PathLike | None = None,
    ):
        _check_int('context_length', context_length, 2)
        _check_int('vocab_size', vocab_size, 2)
        _check_int('width', width, 1)
        _check_int('layers', layers, 1)
        if heads is None:
            heads = width // 64
            if heads == 0:
                raise ValueError(
                    f'heads=None means width // 64, which is 0 for '
                    f'width={width}; pass heads explicitly'
                )
        _check_int('heads', heads, 1)
        if width % heads:
            raise ValueError(
                f'heads={heads} must divide width={width} (each head gets '
                'width // heads channels)'
            )
        if not isinstance(mlp_ratio, (int, float)) or mlp_ratio <= 0:
            raise ValueError(f'mlp_ratio must be > 0, got {mlp_ratio!r}')
        if int(width * mlp_ratio) < 1:
            raise ValueError(
                f'mlp_ratio={mlp_ratio} gives an MLP of width '
                f'{int(width * mlp_ratio)} for width={width}'
            )
        if output_dim is not None:
            _check_int('output_dim', output_dim, 1)
        super().__init__(
            context_length=context_length,
            vocab_size=vocab_size,
            width=width,
            heads=heads,
            layers=layers,
            mlp_ratio=mlp_ratio,
            output_dim=output_dim,
            pool_type='argmax',
            act_layer=QuickGELU if quick_gelu else nn.GELU,
        )
        self.quick_gelu = quick_gelu
        self.mlp_ratio = mlp_ratio
        if pretrained is not None:
            self.load_pretrained(pretrained)

    # open_clip's __init__ assigns ``self.width``; the property below reports
    # the output size instead, which is what the modules around need.
    @property
    def width(self) -> int:
        """Channels C of :meth:`forward`'s output: ``output_dim`` when there
        is a projection, else the transformer width."""
        if self.text_projection is not None:
            return self.output_dim
        return self.transformer.width

    @width.setter
    def width(self, value: int) -> None:
        self._transformer_width = value

    # ----------------------------------------------------------------------
    # tokens
    # ----------------------------------------------------------------------

    def tokenize(self, texts: Sequence[str] | str) -> torch.Tensor:
        """CLIP BPE tokens of ``texts``, zero-padded to ``context_length``.

        Each row is ``<start_of_text> tokens <end_of_text> 0 ...``; a text
        too long for the context is cut and still ends with
        ``<end_of_text>`` (open_clip's rule). A single string counts as one
        text.

        Returns:
            CPU ``LongTensor [N, context_length]``.
        """
        if isinstance(texts, str):
            texts = [texts]
        if self.vocab_size < clip_vocab_size():
            raise ValueError(
                f'tokenize needs vocab_size >= {clip_vocab_size()} (the '
                f'CLIP BPE vocabulary); this encoder has vocab_size='
                f'{self.vocab_size}'
            )
        return tokenize(texts, self.context_length)

    # ----------------------------------------------------------------------
    # forward
    # ----------------------------------------------------------------------

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Embed token sequences, pooled at the end-of-text token.

        The pooled position of each row is the argmax of its token ids (the
        end-of-text id is the largest in the CLIP vocabulary), as open_clip's
        ``'argmax'`` pooling. The attention is causal, so the output at
        position ``p`` depends on positions ``<= p`` only: the transformer
        runs on the first ``max(pooled position) + 1`` positions of the
        batch, with the positional embedding and causal mask cut to that
        length, and returns exactly what the full-length pass returns.

        Args:
            tokens: ``LongTensor [N, L]``, ``L <= context_length``.

        Returns:
            ``[N, C]`` with ``C`` = :attr:`width`.
        """
        if tokens.dim() != 2:
            raise ValueError(
                f'tokens must be [N, L], got shape {tuple(tokens.shape)}'
            )
        if tokens.is_floating_point() or tokens.is_complex():
            raise TypeError(f'tokens must be integer ids, got {tokens.dtype}')
        if tokens.shape[1] > self.num_pos:
            raise ValueError(
                f'tokens have length {tokens.shape[1]} > context_length='
                f'{self.num_pos}'
            )
        cast_dtype = self.transformer.get_cast_dtype()
        if tokens.shape[0] == 0 or tokens.shape[1] == 0:
            return self.positional_embedding.new_zeros(
                tokens.shape[0], self.width, dtype=cast_dtype
            )
        pooled_at = tokens.argmax(dim=-1)
        length = int(pooled_at.max()) + 1
        tokens = tokens[:, :length]

        x = self.token_embedding(tokens).to(cast_dtype)
        x = x + self.positional_embedding[:length].to(cast_dtype)
        attn_mask = self.attn_mask[:length, :length]
        x = self.transformer(x, attn_mask=attn_mask)
        x = self.ln_final(x)
        rows = torch.arange(x.shape[0], device=x.device)
        pooled = x[rows, pooled_at]
        if self.text_projection is not None:
            pooled = pooled @ self.text_projection
        return pooled

    # ----------------------------------------------------------------------
    # weights
    # ----------------------------------------------------------------------

    def load_pretrained(self, path: str | os.PathLike) -> None:
        """Load the text tower from an open_clip / CLIP / GroupViT file.

        Accepted layouts (after an optional ``'state_dict'`` wrapper and an
        optional ``module.`` prefix): a full CLIP state dict (the text-tower
        keys are taken, ``visual.*``, ``logit_scale`` and the size entries
        of OpenAI's files are skipped), or a model whose text encoder sits
        under ``text_encoder.`` (GroupViT, this package) or ``text.``
        (open_clip's ``CustomTextCLIP``): then only those keys are taken. A
        ``positional_embedding`` longer than ``context_length`` is cut to
        its first rows.

        Raises:
            ValueError: missing or unexpected keys, or shapes that differ;
                the message names the keys and the file.
        """
        source = os.fspath(path)
        checkpoint = load_weights(path, map_location='cpu')
        state = _text_tower_state(checkpoint, source)
        own = self.state_dict()

        pos = state.get('positional_embedding')
        if pos is not None and pos.dim() == 2 and pos.shape[0] > self.num_pos:
            state['positional_embedding'] = pos[: self.num_pos]

        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        mismatched = [
            f'{key}: file {tuple(state[key].shape)} vs model '
            f'{tuple(own[key].shape)}'
            for key in sorted(set(own) & set(state))
            if state[key].shape != own[key].shape
        ]
        problems = []
        if missing:
            problems.append('missing keys: ' + ', '.join(missing))
        if unexpected:
            hint = ''
            if 'text_projection' in unexpected:
                shape = tuple(state['text_projection'].shape)
                hint = f' (the file has a text projection {shape}: set '
                hint += f'output_dim={shape[-1]})'
            problems.append('unexpected keys: ' + ', '.join(unexpected) + hint)
        if mismatched:
            problems.append('shape mismatch: ' + '; '.join(mismatched))
        if problems:
            raise ValueError(
                f'cannot load the text encoder from "{source}": '
                + ' | '.join(problems)
            )
        self.load_state_dict(state, strict=True)


def _text_tower_state(checkpoint, source: str) -> dict[str, torch.Tensor]:
    """The text-tower entries of a loaded weight file, with the names of
    :class:`OpenCLIPTextEncoder` (see
    :meth:`OpenCLIPTextEncoder.load_pretrained`).
    """
    if isinstance(checkpoint, Mapping) and isinstance(
        checkpoint.get('state_dict'), Mapping
    ):
        checkpoint = checkpoint['state_dict']
    if not isinstance(checkpoint, Mapping):
        raise ValueError(
            f'"{source}" does not hold a state dict (got '
            f'{type(checkpoint).__name__})'
        )
    state = {}
    for key, value in checkpoint.items():
        if not isinstance(key, str):
            raise ValueError(f'"{source}": non-string key {key!r}')
        if key.startswith(_WRAPPER_PREFIX):
            key = key[len(_WRAPPER_PREFIX) :]
        state[key] = value

    selected = None
    for prefix in _SUBMODULE_PREFIXES:
        if any(key.startswith(prefix) for key in state):
            selected = {
                key[len(prefix) :]: value
                for key, value in state.items()
                if key.startswith(prefix)
            }
            break
    if selected is None:
        selected = {
            key: value
            for key, value in state.items()
            if key not in _OTHER_TOWER_KEYS
            and not key.startswith(_OTHER_TOWER_PREFIXES)
        }
    if not any(key.startswith(_TEXT_TOWER_ROOTS) for key in selected):
        raise ValueError(
            f'"{source}" has no text-encoder weights (looked for keys '
            f'starting with {", ".join(_TEXT_TOWER_ROOTS)}, optionally under '
            f'{", ".join(_SUBMODULE_PREFIXES)})'
        )
    for key, value in selected.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(
                f'"{source}": entry "{key}" is a {type(value).__name__}, '
                'not a tensor'
            )
    return selected
