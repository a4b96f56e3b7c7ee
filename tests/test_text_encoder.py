"""OpenCLIPTextEncoder: sizes, pooling, the truncated forward, weight files."""

import pytest
import torch
from mmseg.registry import MODELS
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from open_clip.transformer import TextTransformer

from mixreorg_mmseg.models.text_encoders import OpenCLIPTextEncoder

from .conftest import float32_atol

TINY = dict(context_length=16, vocab_size=100, width=32, layers=2, heads=4)
EOT = TINY['vocab_size'] - 1

# The truncated forward runs the same layers on 7 or 16 positions, so BLAS
# and attention kernels block, and round, differently. Rounded additions
# along one TINY forward (width 32, MLP 128, head width 8, <= 16 keys), per
# residual block: two LayerNorms (mean and variance, 4 x 32), qkv 32, q.k 8,
# softmax 16, attention times values 16, out projection 32, MLP 32 + 128;
# two blocks, then ln_final (2 x 32).
FORWARD_TERMS = 2 * (4 * 32 + 32 + 8 + 16 + 16 + 32 + 32 + 128) + 2 * 32
# The backward pass adds the transposed reductions, per block: MLP 128 + 32,
# two LayerNorm backwards (2 means of 32 each), out projection 32, attention
# (d values 16, d probabilities 8, softmax 16, d queries 16, d keys 16),
# qkv 3 x 32; then ln_final's backward (2 x 32) and the sum over 2 texts.
BACKWARD_TERMS = (
    FORWARD_TERMS
    + 2 * (128 + 32 + 4 * 32 + 32 + 16 + 8 + 16 + 16 + 16 + 3 * 32)
    + 2 * 32
    + 2
)


def tiny_encoder(**kwargs):
    torch.manual_seed(0)
    return OpenCLIPTextEncoder(**{**TINY, **kwargs}).eval()


def tokens_with_eot(positions, length=TINY['context_length'], seed=0):
    """Random ids below the EOT id, EOT at ``positions``, zeros after."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, EOT, (len(positions), length), generator=gen)
    for row, pos in enumerate(positions):
        tokens[row, pos] = EOT
        tokens[row, pos + 1 :] = 0
    return tokens


def tiny_clip(quick_gelu=True):
    torch.manual_seed(1)
    return CLIP(
        embed_dim=16,
        vision_cfg=CLIPVisionCfg(
            layers=1, width=32, head_width=16, patch_size=8, image_size=16
        ),
        text_cfg=CLIPTextCfg(
            context_length=16, vocab_size=100, width=32, heads=4, layers=2
        ),
        quick_gelu=quick_gelu,
    ).eval()


def test_forward_returns_one_float_vector_per_text():
    encoder = tiny_encoder()
    out = encoder(tokens_with_eot([3, 7, 15]))
    assert out.shape == (3, 32)
    assert out.dtype == torch.float32
    assert encoder.width == 32


def test_output_dim_adds_projection_and_sets_width():
    encoder = tiny_encoder(output_dim=8)
    assert encoder.width == 8
    assert encoder.text_projection.shape == (32, 8)
    assert encoder(tokens_with_eot([2, 5])).shape == (2, 8)


def test_full_size_has_groupvit_parameter_count():
    encoder = OpenCLIPTextEncoder()
    count = sum(p.numel() for p in encoder.parameters())
    assert abs(count - 22.15e6) / 22.15e6 < 0.01
    assert encoder.heads == 4 and encoder.text_projection is None
    assert MODELS.get('OpenCLIPTextEncoder') is OpenCLIPTextEncoder


@pytest.mark.parametrize('positions', [[3, 5, 7], [0, 1], [15, 2]])
def test_truncated_forward_equals_full_length_computation(positions):
    encoder = tiny_encoder()
    tokens = tokens_with_eot(positions)
    with torch.no_grad():
        fast = encoder(tokens)
        # open_clip's own forward runs all 16 positions
        full = TextTransformer.forward(encoder, tokens)
    # LayerNorm outputs: the first-order error of the residual stream is
    # scaled by ln_final as the values are, so the size is the output's
    atol = float32_atol(FORWARD_TERMS, full.abs().max())
    torch.testing.assert_close(fast, full, rtol=0, atol=atol)


def test_truncated_forward_backpropagates_like_full_length():
    encoder = tiny_encoder()
    tokens = tokens_with_eot([4, 6])
    # a LayerNorm output (gain 1) sums to its bias over the features, a
    # constant: weight the features so that the gradient is not zero
    weights = torch.randn(32, generator=torch.Generator().manual_seed(0))
    (encoder(tokens) @ weights).sum().backward()
    fast = encoder.positional_embedding.grad.clone()
    encoder.zero_grad()
    (TextTransformer.forward(encoder, tokens) @ weights).sum().backward()
    full = encoder.positional_embedding.grad
    assert full[:7].abs().amax(dim=1).min() > 0  # every used position
    # the LayerNorms' 1 / std (about 50 here) scales terms and gradient
    # alike, so the size of the summed terms is the gradient's
    atol = float32_atol(BACKWARD_TERMS, full.abs().max())
    torch.testing.assert_close(fast, full, rtol=0, atol=atol)
    assert fast[7:].abs().max() == 0  # positions after the last EOT


def test_shorter_input_than_context_is_accepted():
    encoder = tiny_encoder()
    tokens = tokens_with_eot([2, 5])
    with torch.no_grad():
        torch.testing.assert_close(encoder(tokens[:, :8]), encoder(tokens))


def test_tokenize_pads_to_context_and_ends_with_eot():
    encoder = tiny_encoder(vocab_size=49408)
    tokens = encoder.tokenize(['a photo of a dog.', 'hi'])
    assert tokens.shape == (2, 16) and tokens.dtype == torch.long
    assert tokens.device.type == 'cpu'
    assert tokens[:, 0].tolist() == [49406, 49406]  # <start_of_text>
    eot = tokens.argmax(-1)
    assert tokens[torch.arange(2), eot].tolist() == [49407, 49407]
    assert eot.tolist() == [7, 2]  # 6 BPE tokens, 1 BPE token
    assert tokens[1, 3:].eq(0).all()
    long = encoder.tokenize(['word ' * 40])
    assert long[0, -1] == 49407  # cut and still closed


def test_tokenize_needs_the_clip_vocabulary():
    with pytest.raises(ValueError, match='vocab_size'):
        tiny_encoder().tokenize(['a dog'])


@pytest.mark.parametrize(
    'kwargs, name',
    [
        (dict(width=30, heads=4), 'heads'),
        (dict(heads=None), 'heads'),  # 32 // 64 == 0
        (dict(context_length=1), 'context_length'),
        (dict(layers=0), 'layers'),
        (dict(width=0), 'width'),
        (dict(output_dim=0), 'output_dim'),
        (dict(mlp_ratio=0), 'mlp_ratio'),
    ],
)
def test_bad_sizes_raise_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        OpenCLIPTextEncoder(**{**TINY, **kwargs})


def test_bad_tokens_raise():
    encoder = tiny_encoder()
    with pytest.raises(ValueError, match='context_length'):
        encoder(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match=r'\[N, L\]'):
        encoder(torch.zeros(16, dtype=torch.long))
    with pytest.raises(TypeError, match='integer'):
        encoder(torch.zeros(1, 16))


def test_open_clip_model_file_loads_and_matches_encode_text(tmp_path):
    clip = tiny_clip()
    path = tmp_path / 'open_clip.pt'
    torch.save(clip.state_dict(), path)
    encoder = OpenCLIPTextEncoder(**TINY, output_dim=16, pretrained=str(path))
    tokens = tokens_with_eot([3, 9, 15])
    with torch.no_grad():
        expected = clip.encode_text(tokens)
        # open_clip's own forward of the same layers; the projection sums 32
        atol = float32_atol(FORWARD_TERMS + 32, expected.abs().max())
        torch.testing.assert_close(
            encoder(tokens), expected, rtol=0, atol=atol
        )
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, clip.state_dict()[key]), key


def test_wrapped_and_prefixed_files_load(tmp_path):
    source = tiny_encoder()
    state = source.state_dict()
    layouts = {
        'wrapped': {
            'state_dict': {f'module.{k}': v for k, v in state.items()}
        },
        'groupvit': {
            **{f'text_encoder.{k}': v for k, v in state.items()},
            'img_encoder.patch_embed.weight': torch.zeros(3),
            'logit_scale': torch.zeros(()),
        },
    }
    for name, checkpoint in layouts.items():
        path = tmp_path / f'{name}.pth'
        torch.save(checkpoint, path)
        torch.manual_seed(123)
        loaded = OpenCLIPTextEncoder(**TINY, pretrained=path)
        for key, value in loaded.state_dict().items():
            assert torch.equal(value, state[key]), (name, key)


def test_longer_positional_embedding_is_truncated(tmp_path):
    source = tiny_encoder()
    path = tmp_path / 'w.pth'
    torch.save(source.state_dict(), path)
    short = OpenCLIPTextEncoder(
        **{**TINY, 'context_length': 8}, pretrained=path
    )
    assert torch.equal(
        short.positional_embedding, source.positional_embedding[:8]
    )
    tokens = tokens_with_eot([3, 6], length=8)
    with torch.no_grad():
        torch.testing.assert_close(short.eval()(tokens), source(tokens))


def test_bad_checkpoint_keys_and_shapes_raise_naming_key_and_file(tmp_path):
    state = tiny_encoder().state_dict()
    cases = {
        'extra': (
            {**state, 'transformer.resblocks.0.attn.bogus': torch.zeros(1)},
            'transformer.resblocks.0.attn.bogus',
        ),
        'missing': (
            {k: v for k, v in state.items() if k != 'ln_final.bias'},
            'ln_final.bias',
        ),
        'shape': (
            {**state, 'ln_final.weight': torch.ones(31)},
            'ln_final.weight',
        ),
        'projection': (
            {**state, 'text_projection': torch.zeros(32, 16)},
            'output_dim=16',
        ),
        'image_only': ({'visual.proj': torch.zeros(2)}, 'no text-encoder'),
    }
    for name, (checkpoint, expected) in cases.items():
        path = tmp_path / f'{name}.pth'
        torch.save(checkpoint, path)
        with pytest.raises(ValueError) as info:
            OpenCLIPTextEncoder(**TINY, pretrained=str(path))
        assert expected in str(info.value), name
        assert str(path) in str(info.value), name


def test_missing_weight_file_raises_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.pth'):
        OpenCLIPTextEncoder(**TINY, pretrained=tmp_path / 'nowhere.pth')


def test_builds_from_config_through_mmseg_registry():
    encoder = MODELS.build(dict(type='OpenCLIPTextEncoder', **TINY))
    assert isinstance(encoder, OpenCLIPTextEncoder)
