"""The synthetic world's captions: a sentence naming a scene's objects.

The templates are data (:data:`LIST_TEMPLATES`, :data:`PAIR_TEMPLATES`);
:func:`caption_scene` fills one with the scene's objects, counted and
described, and :func:`shapes_named` reads the shape names back from a
caption.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ..caption_text import join_phrases, plural, with_article

#: Words for a background's tone in captions.
TONE_WORDS = {'dark': ('dark', 'dark grey'), 'light': ('light', 'pale')}

#: Sentences around the list of objects. Fields: ``{objects}`` (the list),
#: ``{there}`` ('there is' / 'there are'), ``{background}`` (tone word),
#: ``{count}`` ('one shape', 'three shapes').
LIST_TEMPLATES = (
    '{objects}.',
    'a photo of {objects}.',
    'a picture of {objects}.',
    'an image showing {objects}.',
    'a drawing of {objects}.',
    'this image contains {objects}.',
    '{there} {objects}.',
    '{objects} on a {background} background.',
    'a photo of {objects} on a {background} background.',
    '{there} {objects} on a {background} background.',
    '{count}: {objects}.',
)
#: Sentences for exactly two object phrases (``{0}``, ``{1}``), drawn
#: alongside :data:`LIST_TEMPLATES` then.
PAIR_TEMPLATES = (
    '{there} {0} next to {1}.',
    '{0} beside {1}.',
    '{0} together with {1}.',
    'a {background} background with {0} and {1}.',
)
#: Counts as words; larger counts are written in digits.
NUMBER_WORDS = (
    'no',
    'one',
    'two',
    'three',
    'four',
    'five',
    'six',
    'seven',
    'eight',
    'nine',
    'ten',
)


def shapes_named(caption: str, shapes: Sequence[str]) -> set[str]:
    """The shape names (singular or plural) that ``caption`` mentions."""
    words = set(re.findall(r'[a-z]+', caption.lower()))
    return {s for s in shapes if s in words or plural(s) in words}


def caption_scene(
    objects: Sequence[dict],
    background: dict,
    rng: np.random.Generator,
    colour_prob: float = 0.0,
    texture_prob: float = 0.0,
    background_prob: float | None = None,
) -> str:
    """A sentence naming every object (and no other shape).

    Objects alike in what the caption says are counted together
    ('two red discs'); the order of the phrases and the template are drawn
    from ``rng``.

    Args:
        objects: The scene's objects, dicts with ``shape``, ``colour`` and
            ``texture`` (as :meth:`SyntheticWorld.render
            <mixreorg_mmseg.datasets.synthetic_world.SyntheticWorld.render>`
            returns them).
        background: The scene's background, a dict with its ``tone``.
        rng: Draws every choice of wording.
        colour_prob: Chance that the colours are named; they always are
            when one shape comes in two colours.
        texture_prob: Chance that non-solid textures are named.
        background_prob: Chance that the sentence names the background;
            None: as often as the template drawn happens to.
    """
    colours_of = {}
    for obj in objects:
        colours_of.setdefault(obj['shape'], set()).add(obj['colour'])
    say_colour = rng.random() < colour_prob or any(
        len(c) > 1 for c in colours_of.values()
    )
    say_texture = rng.random() < texture_prob
    groups: dict[tuple, int] = {}
    for obj in objects:
        texture = obj['texture'] if say_texture else 'solid'
        key = (
            texture if texture != 'solid' else None,
            obj['colour'] if say_colour else None,
            obj['shape'],
        )
        groups[key] = groups.get(key, 0) + 1
    phrases = []
    for (texture, colour, shape), n in groups.items():
        words = ' '.join(w for w in (texture, colour) if w is not None)
        noun = shape if n == 1 else plural(shape)
        words = f'{words} {noun}' if words else noun
        if n == 1:
            phrases.append(with_article(words))
        else:
            number = NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
            phrases.append(f'{number} {words}')
    order = rng.permutation(len(phrases))
    counts = list(groups.values())
    phrases = [phrases[i] for i in order]
    first_count = counts[order[0]]
    total = len(objects)
    number = NUMBER_WORDS[total] if total < len(NUMBER_WORDS) else total
    fields = dict(
        there='there is' if first_count == 1 else 'there are',
        background=str(rng.choice(TONE_WORDS[background['tone']])),
        count=f'{number} shape' + ('s' if total > 1 else ''),
    )
    templates = LIST_TEMPLATES
    if len(phrases) == 2:
        templates = LIST_TEMPLATES + PAIR_TEMPLATES
    if background_prob is not None:
        # only sentences that name the background, or only those that
        # do not
        names = rng.random() < background_prob
        templates = tuple(
            t for t in templates if ('{background}' in t) == names
        )
    template = templates[int(rng.integers(len(templates)))]
    if template in PAIR_TEMPLATES:
        text = template.format(*phrases, **fields)
    else:
        text = template.format(objects=join_phrases(phrases), **fields)
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    return text
