"""English phrase helpers shared by the generated captions.

The toy captions (:mod:`~mixreorg_mmseg.datasets.toy_image_captions`) and
the synthetic world's captions
(:mod:`~mixreorg_mmseg.datasets.synthetic_world.captions`) build their
sentences from the same small pieces: a noun phrase with its indefinite
article, a list of phrases joined as English writes it, and a plural.
"""

from __future__ import annotations

from collections.abc import Sequence


def with_article(phrase: str) -> str:
    """``phrase`` with its indefinite article: ``'a disc'``, ``'an oval'``.

    The article follows the first letter (a vowel takes ``'an'``), which is
    right for the colour, texture and shape words the captions use.
    """
    return ('an ' if phrase[0] in 'aeiou' else 'a ') + phrase


def join_phrases(phrases: Sequence[str]) -> str:
    """Join phrases as an English list: ``'x'``, ``'x and y'``,
    ``'x, y and z'``."""
    if len(phrases) == 1:
        return phrases[0]
    return ', '.join(phrases[:-1]) + ' and ' + phrases[-1]


def plural(noun: str) -> str:
    """The regular English plural: ``'disc'`` -> ``'discs'``, ``'cross'``
    -> ``'crosses'``."""
    return noun + ('es' if noun.endswith(('s', 'x', 'sh', 'ch')) else 's')
