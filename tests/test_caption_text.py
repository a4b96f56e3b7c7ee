"""The English phrase helpers that the generated captions share."""

import pytest

from mixreorg_mmseg.datasets.caption_text import (
    join_phrases,
    plural,
    with_article,
)


@pytest.mark.parametrize(
    'phrase, expected',
    [('disc', 'a disc'), ('oval', 'an oval'), ('red star', 'a red star')],
)
def test_with_article_picks_a_or_an_by_the_first_letter(phrase, expected):
    assert with_article(phrase) == expected


@pytest.mark.parametrize(
    'phrases, expected',
    [
        (['a disc'], 'a disc'),
        (['a disc', 'a ring'], 'a disc and a ring'),
        (['a disc', 'a ring', 'two stars'], 'a disc, a ring and two stars'),
    ],
)
def test_join_phrases_writes_an_english_list(phrases, expected):
    assert join_phrases(phrases) == expected


@pytest.mark.parametrize(
    'noun, expected',
    [('disc', 'discs'), ('cross', 'crosses'), ('box', 'boxes')],
)
def test_plural_adds_es_after_sibilants(noun, expected):
    assert plural(noun) == expected
