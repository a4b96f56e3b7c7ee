"""Prompt templates that turn class names or nouns into sentences.

A template is a ``str.format`` string with exactly one empty field ``{}``,
filled with the name: ``'a photo of a {}.'``. Sets of templates are tuples
of such strings. The ImageNet sets are open_clip's
(``open_clip.zero_shot_metadata``, where they are lambdas ``c ->
f'...{c}...'``); they are converted once, at import, by calling each with
``'{}'``, so every set here has one representation that a config can also
write down literally.

GroupViT fills its noun prompts with one template per noun (Xu et al.,
CVPR 2022, Sec. 3.3) and averages the text embeddings of all templates of a
class for zero-shot segmentation (Sec. 3.4, following CLIP).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

from open_clip.zero_shot_metadata import (
    OPENAI_IMAGENET_TEMPLATES,
    SIMPLE_IMAGENET_TEMPLATES,
)

Templates = str | Sequence[str]


def _is_template(template: object) -> bool:
    """Whether ``template`` is a string with exactly one field, ``{}``."""
    if not isinstance(template, str):
        return False
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError:  # unbalanced braces
        return False
    return fields == [('', '', None)]


def _from_callables(templates: Sequence[Callable[[str], str]]) -> tuple:
    converted = tuple(template('{}') for template in templates)
    bad = [t for t in converted if not _is_template(t)]
    if bad:
        raise ValueError(f'open_clip templates with stray braces: {bad}')
    return converted


#: Named template sets: ``'simple'`` (one template, deterministic),
#: ``'imagenet'`` (CLIP's 80 ImageNet templates) and ``'imagenet_simple'``
#: (the 7-template subset), each a tuple of format strings with one ``{}``.
PROMPT_TEMPLATES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        'simple': ('a photo of a {}.',),
        'imagenet': _from_callables(OPENAI_IMAGENET_TEMPLATES),
        'imagenet_simple': _from_callables(SIMPLE_IMAGENET_TEMPLATES),
    }
)


def get_templates(templates: Templates) -> tuple[str, ...]:
    """Resolve a template set.

    Args:
        templates: A name in :data:`PROMPT_TEMPLATES`, or a non-empty list of
            format strings, each with exactly one ``{}`` and no other field.

    Returns:
        The templates, as a tuple.

    Raises:
        KeyError: unknown name (the message lists the known ones).
        ValueError: an empty list, or a string that is not a template.
        TypeError: neither a name nor a list of strings.
    """
    if isinstance(templates, str):
        if templates not in PROMPT_TEMPLATES:
            raise KeyError(
                f'unknown prompt templates {templates!r}; known: '
                f'{", ".join(sorted(PROMPT_TEMPLATES))} (or pass a list of '
                "strings with one '{}' each)"
            )
        return PROMPT_TEMPLATES[templates]
    if not isinstance(templates, Sequence):
        raise TypeError(
            'templates must be a name or a list of strings, got '
            f'{type(templates).__name__}'
        )
    templates = tuple(templates)
    if not templates:
        raise ValueError('templates is an empty list')
    for i, template in enumerate(templates):
        if not _is_template(template):
            raise ValueError(
                f'templates[{i}]={template!r} must be a string with exactly '
                "one '{}' and no other braces"
            )
    return templates


def fill_templates(names: Sequence[str], templates: Templates) -> list[str]:
    """Every name in every template, name-major.

    Args:
        names: N names (class names, nouns).
        templates: T templates, as for :func:`get_templates`.

    Returns:
        ``N * T`` sentences; sentence ``i * T + t`` is name ``i`` in template
        ``t``, so the embeddings reshape to ``[N, T, C]``.
    """
    if isinstance(names, str):
        raise TypeError('names must be a list of strings, not a str')
    templates = get_templates(templates)
    sentences = []
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise TypeError(
                f'names[{i}] must be a str, got {type(name).__name__}'
            )
        sentences.extend(template.format(name) for template in templates)
    return sentences
