"""CLIP's BPE tokens of texts, as the text encoder reads them.

One tokenizer for the model (``OpenCLIPTextEncoder.tokenize``) and the data
pipeline (``TokenizeCaption``): open_clip's ``SimpleTokenizer`` (the BPE
vocabulary file that ships with open_clip; texts are cleaned with ftfy and
lower-cased).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from open_clip.tokenizer import SimpleTokenizer


@functools.lru_cache(maxsize=1)
def clip_tokenizer() -> SimpleTokenizer:
    """open_clip's CLIP BPE tokenizer, one instance per process (building
    it parses the 49k BPE merges; each dataloader worker builds its own)."""
    return SimpleTokenizer()


def clip_vocab_size() -> int:
    """Entries of the CLIP BPE vocabulary (49408)."""
    return clip_tokenizer().vocab_size


def tokenize(texts: Sequence[str], context_length: int) -> torch.Tensor:
    """CLIP BPE tokens of ``texts``, zero-padded to ``context_length``.

    Each row is ``<start_of_text> tokens <end_of_text> 0 ...``; a text too
    long for the context is cut and still ends with ``<end_of_text>``
    (open_clip's rule).

    Returns:
        CPU ``LongTensor [N, context_length]``.
    """
    if isinstance(texts, str):
        raise TypeError('texts must be a list of str, not one str')
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                f'texts[{i}] must be a str, got {type(text).__name__}'
            )
    return clip_tokenizer()(texts, context_length=context_length)
