"""Colour words leave a training caption before it is tokenized."""

import pytest
from mmcv.transforms import Compose

from mixreorg_mmseg.datasets.transforms import COLOUR_WORDS, DropCaptionWords
from mixreorg_mmseg.utils.clip_tokens import tokenize


def test_colour_words_go_and_nothing_else_does():
    drop = DropCaptionWords('colours')
    out = drop(
        dict(
            caption='A Red ring, a purple diamond and a cyan triangle on a '
            'dark grey background.'
        )
    )
    assert out['caption'] == (
        'A ring, a diamond and a triangle on a dark background.'
    )
    # whole words only: a colour inside a word stays
    kept = 'A starred Redding with a greyhound.'
    assert drop(dict(caption=kept))['caption'] == kept
    assert drop(dict(caption='Blue square.'))['caption'] == 'square.'
    assert {'red', 'grey', 'gray', 'cyan'} <= set(COLOUR_WORDS)


def test_a_given_word_list_is_dropped():
    drop = DropCaptionWords(['big', 'small'])
    assert drop(dict(caption='a big disc, a small star'))['caption'] == (
        'a disc, a star'
    )


def test_bad_words_and_captions_are_named():
    with pytest.raises(ValueError, match='colours'):
        DropCaptionWords('colors')
    with pytest.raises(ValueError, match='non-empty'):
        DropCaptionWords(['red', ' blue'])
    with pytest.raises(ValueError, match='non-empty'):
        DropCaptionWords([])
    with pytest.raises(KeyError, match='a.jpg'):
        DropCaptionWords()(dict(img_path='a.jpg'))


def test_the_tokens_are_those_of_the_shortened_caption():
    # the segmentor checks the pipeline's tokens against its own
    # tokenization of the packed caption: both must see the short one
    pipeline = Compose(
        [
            dict(type='DropCaptionWords', words='colours'),
            dict(
                type='TokenizeCaption',
                context_length=24,
                max_nouns=2,
                vocabulary=['disc', 'star'],
            ),
        ]
    )
    out = pipeline(dict(caption='a green disc and a pink star'))
    assert out['caption'] == 'a disc and a star'
    assert out['caption_tokens'].tolist() == (
        tokenize(['a disc and a star'], 24)[0].tolist()
    )
