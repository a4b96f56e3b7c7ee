"""CLIP tokens of texts (``mixreorg_mmseg.utils.clip_tokens``) against
open_clip's tokenizer."""

import pytest
import torch
from open_clip.tokenizer import SimpleTokenizer

from mixreorg_mmseg.utils.clip_tokens import tokenize

TEXTS = [
    'a photo of a disc.',
    'A Photo of a DISC.',  # lower-cased: the same ids as the first
    'a photo of a disc.',  # a repeat, answered from the cache
    '',
    'caf\u00e9 na\u00efve \u201cquoted\u201d  spaced   out',  # ftfy + spaces
    ' '.join(['square'] * 40),  # longer than the context: cut
]


@pytest.mark.parametrize('context_length', [2, 5, 24, 77])
def test_tokens_are_open_clips_for_new_and_repeated_texts(context_length):
    expected = SimpleTokenizer()(TEXTS, context_length=context_length)
    for _ in range(2):  # the second round reads every text from the cache
        tokens = tokenize(TEXTS, context_length)
        assert tokens.dtype == torch.long
        assert torch.equal(tokens, expected)


def test_a_changed_result_does_not_change_the_next_one():
    first = tokenize(['a star.'], 8)
    first.fill_(7)
    assert torch.equal(
        tokenize(['a star.'], 8), SimpleTokenizer()(['a star.'], 8)
    )


def test_no_texts_give_no_rows_and_a_str_is_refused():
    assert tokenize([], 24).shape == (0, 24)
    with pytest.raises(TypeError, match='list of str'):
        tokenize('a star.', 24)
    with pytest.raises(TypeError, match=r'texts\[1\]'):
        tokenize(['a star.', 3], 24)
