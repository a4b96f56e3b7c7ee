"""CLIP's BPE tokens of texts, as the text encoder reads them.

One tokenizer for the model (``OpenCLIPTextEncoder.tokenize``) and the data
pipeline (``TokenizeCaption``): open_clip's ``SimpleTokenizer`` (the BPE
vocabulary file that ships with open_clip; texts are cleaned with ftfy and
lower-cased). A text's BPE ids are kept per process (least recently used
first out): noun prompts and templated captions repeat from sample to
sample, and cleaning and BPE are most of a sample's text work.
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


# distinct texts whose BPE ids a process keeps: a caption's entry (text
# and ids) takes under 1 KB, so a full cache stays under 8 MB in each
# process (every dataloader worker has its own); the synthetic world's
# 6,777 distinct captions and its noun prompts all fit
TEXT_CACHE_SIZE = 1 << 13


@functools.lru_cache(maxsize=TEXT_CACHE_SIZE)
def _bpe_ids(text: str) -> tuple[int, ...]:
    """The BPE ids of one text, without start and end tokens."""
    return tuple(clip_tokenizer().encode(text))


def tokenize(texts: Sequence[str], context_length: int) -> torch.Tensor:
    """CLIP BPE tokens of ``texts``, zero-padded to ``context_length``.

    Each row is ``<start_of_text> tokens <end_of_text> 0 ...``; a text too
    long for the context is cut and still ends with ``<end_of_text>``
    (open_clip's rule). The same as ``SimpleTokenizer()(texts,
    context_length)``, with each distinct text encoded once per process.

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
    tokenizer = clip_tokenizer()
    sot, eot = tokenizer.sot_token_id, tokenizer.eot_token_id
    rows = []
    for text in texts:
        row = (sot, *_bpe_ids(text), eot)
        if len(row) > context_length:
            row = row[: context_length - 1] + (eot,)
        rows.append(row + (0,) * (context_length - len(row)))
    # one tensor from all rows; reshape keeps [0, L] for no texts
    return torch.tensor(rows, dtype=torch.long).reshape(-1, context_length)
