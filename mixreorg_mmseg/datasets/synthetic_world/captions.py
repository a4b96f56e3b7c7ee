"""The synthetic world's captions: a sentence naming a scene's objects.

The templates are data: named sets of sentence frames
(:data:`CAPTION_TEMPLATES`; the default ``'full'`` set is
:data:`LIST_TEMPLATES` with :data:`PAIR_TEMPLATES`). :func:`caption_scene`
fills one with the scene's objects, counted and described, and
:func:`shapes_named` reads the shape names back from a caption. No frame
holds a shape word, so a caption names exactly its scene's shapes.
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
#: A terse set: the object list alone, or with the background.
TERSE_LIST_TEMPLATES = (
    '{objects}.',
    '{objects}, {background} background.',
)
TERSE_PAIR_TEMPLATES = ('{0} with {1}.',)
#: A descriptive set: other sentence frames than the full set's.
DESCRIPTIVE_LIST_TEMPLATES = (
    'in this scene we can see {objects}.',
    'the picture shows {objects}.',
    'somebody has drawn {objects}.',
    'a simple illustration of {objects}.',
    '{objects} can be seen here.',
    'in total {count}, namely {objects}.',
    'a {background} canvas with {objects} drawn on it.',
    'an illustration of {objects} against a {background} backdrop.',
)
DESCRIPTIVE_PAIR_TEMPLATES = (
    '{0} drawn close to {1}.',
    'on a {background} backdrop, {0} along with {1}.',
)
#: Named template sets: ``name -> (list templates, pair templates)``. The
#: list sentences take every scene, the pair sentences are drawn
#: alongside them for scenes of exactly two object phrases. Each set has
#: list sentences with and without ``{background}`` (for
#: ``background_prob``).
CAPTION_TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    'full': (LIST_TEMPLATES, PAIR_TEMPLATES),
    'terse': (TERSE_LIST_TEMPLATES, TERSE_PAIR_TEMPLATES),
    'descriptive': (DESCRIPTIVE_LIST_TEMPLATES, DESCRIPTIVE_PAIR_TEMPLATES),
}
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
    templates: str = 'full',
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
        templates: Name of the sentence frames, a key of
            :data:`CAPTION_TEMPLATES`.
    """
    if templates not in CAPTION_TEMPLATES:
        raise ValueError(
            f'caption templates must be one of {sorted(CAPTION_TEMPLATES)}, '
            f'got {templates!r}'
        )
    list_templates, pair_templates = CAPTION_TEMPLATES[templates]
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
    frames = list_templates
    if len(phrases) == 2:
        frames = list_templates + pair_templates
    if background_prob is not None:
        # only sentences that name the background, or only those that
        # do not
        names = rng.random() < background_prob
        frames = tuple(t for t in frames if ('{background}' in t) == names)
    template = frames[int(rng.integers(len(frames)))]
    if template in pair_templates:
        text = template.format(*phrases, **fields)
    else:
        text = template.format(objects=join_phrases(phrases), **fields)
    if rng.random() < 0.5:
        text = text[0].upper() + text[1:]
    return text
