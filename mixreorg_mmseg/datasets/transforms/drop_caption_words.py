"""Drop words from a training caption before it is tokenized.

A caption word that the image shows through a cue other than the thing
the model should learn lets the image-text losses match image and caption
without it. Colour is the case here: where colour is drawn independently
of shape (the synthetic world's default), "a red star and a blue disc" is
told from the batch's other captions by its colours alone, and the
contrastive losses (the caption loss, MixReorg's restored-feature loss and
its mixed-image segmentation loss) learn colour where they should learn
the outline. Without the colour words the caption names only what the
outline shows. Measured in docs/benchmarks.md ("colour words").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS

from .caption_field import require_caption

#: English colour terms: the eleven basic ones (Berlin and Kay 1969), both
#: spellings of grey, and common others.
COLOUR_WORDS = (
    'black',
    'white',
    'red',
    'green',
    'yellow',
    'blue',
    'brown',
    'orange',
    'pink',
    'purple',
    'grey',
    'gray',
    'cyan',
    'magenta',
    'violet',
    'teal',
    'turquoise',
    'navy',
    'maroon',
    'beige',
    'gold',
    'golden',
    'silver',
    'lime',
    'olive',
    'indigo',
    'crimson',
    'scarlet',
    'lavender',
)

#: Named word sets for ``DropCaptionWords(words=...)``.
WORD_SETS = {'colours': COLOUR_WORDS}


@TRANSFORMS.register_module()
class DropCaptionWords(BaseTransform):
    """Remove whole words from ``results['caption']`` (case-insensitive).

    The shortened caption replaces the original, so the tokens made from
    it downstream (``TokenizeCaption``) and the caption the segmentor sees
    agree. Put it before ``TokenizeCaption``.

    Args:
        words: A name of :data:`WORD_SETS` (``'colours'``) or the words
            themselves.
    """

    def __init__(self, words: str | Sequence[str] = 'colours') -> None:
        if isinstance(words, str):
            if words not in WORD_SETS:
                raise ValueError(
                    f'DropCaptionWords: words must be one of '
                    f'{sorted(WORD_SETS)} or a list of words, got {words!r}'
                )
            words = WORD_SETS[words]
        words = tuple(words)
        if not words or not all(
            isinstance(w, str) and w.strip() == w and w for w in words
        ):
            raise ValueError(
                'DropCaptionWords: words must be non-empty strings without '
                f'surrounding spaces, got {words!r}'
            )
        self.words = words
        alternatives = '|'.join(
            re.escape(w) for w in sorted(words, key=len, reverse=True)
        )
        self._pattern = re.compile(rf'\b(?:{alternatives})\b[ \t]*', re.I)

    def transform(self, results: dict) -> dict:
        caption = require_caption(results, 'DropCaptionWords')
        results['caption'] = self._pattern.sub('', caption).strip()
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(words={len(self.words)})'
