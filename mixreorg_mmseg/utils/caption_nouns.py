"""Nouns of a caption, for the prompts of GroupViT's multi-label loss.

GroupViT's multi-label image-text contrastive loss (Xu et al., CVPR 2022,
Sec. 3.3) pairs each image with K extra sentences, one per noun of its
caption put into a prompt template (``'a photo of a {noun}.'``). GroupViT
finds the nouns with NLTK's part-of-speech tagger, whose models are
downloaded at run time; this module needs no download and no model. It
finds nouns with fixed rules, so it is deterministic, fast and
reproducible, and it is wrong where a word's part of speech depends on the
sentence.

How nouns are found
-------------------
1. The caption is lower-cased and split into words: runs of letters, with
   inner hyphens or apostrophes (``t-shirt``, ``dog's``). A possessive
   ``'s`` or trailing ``'`` is dropped (``dog's`` -> ``dog``). Digits and
   other characters separate words and are never part of one.
2. Without a vocabulary, a word is dropped when it, or its singular, is in
   one of the stop lists below (articles and determiners, pronouns,
   prepositions, conjunctions, auxiliaries and common verb forms, adverbs,
   numerals, common adjectives with colours, sizes and positions, words
   about the picture itself such as ``photo`` and quantity nouns such as
   ``pair``); when it is shorter than two letters; when it ends in ``-ing``
   (present participles: ``riding``) unless listed in :data:`ING_NOUNS`
   (``building``); when it ends in ``-ed`` but not ``-eed``/``-bed``/
   ``-shed``/``-sled`` (past participles: ``parked``); when it ends in
   ``-ly`` but not ``-fly`` and is not in :data:`LY_NOUNS` (adverbs:
   ``slowly``). Every other word counts as a noun. A hyphenated word is
   also dropped when all its parts are stop words (``black-and-white``).
3. Plurals become singular by :func:`singularize`: a table of irregular
   plurals (``men``, ``leaves``, ``tomatoes``...), words that are the same
   in both numbers or only plural (``sheep``, ``jeans``), then suffix rules
   applied only where they cannot be wrong for an English noun outside the
   listed exceptions: ``-sses`` -> ``-ss``; ``-ches``/``-shes``/``-xes``/
   ``-zzes`` -> drop ``es``; consonant + ``-ies`` -> ``-y``; else a final
   ``s`` is dropped unless the word ends in ``ss``, ``us`` or ``is``.
   Anything else is left as written.
4. Nouns are kept in order of first appearance, once each (by singular),
   at most ``max_nouns``.

With a vocabulary (an iterable of nouns, or a text file with one per line,
such as a segmentation data set's ``classes.txt``) only vocabulary entries
are kept and the stop lists are not used: at each
word the longest entry (up to the longest entry's number of words, so
``traffic light`` before ``light``) that matches the words as written, or
with the last word singularised by :func:`singularize` or with a final
``s``/``es`` removed, is taken. The vocabulary confirms the singular, so
this mode is exact whenever the captions name things by the vocabulary's
words, as the synthetic world's captions and a class list do.

Limits
------
Without a vocabulary: a word used as a noun and also listed as a verb or
adjective is lost (``orange``, ``light``, ``saw``); a verb or adjective not
listed counts as a noun (``a man surfs`` -> ``man``, ``surf``); compounds are
split (``traffic light`` -> ``traffic``, ``light`` is a listed adjective);
plurals outside the rules stay plural. Only English.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# --------------------------------------------------------------------------
# stop lists
# --------------------------------------------------------------------------

#: Articles, determiners and quantifiers.
DETERMINERS = frozenset(
    'a an the this that these those some any each every all both either '
    'neither no another other others such many much few several more most '
    'less least enough various certain whole own same lot lots plenty'.split()
)

#: Personal, possessive, reflexive, indefinite and interrogative pronouns.
PRONOUNS = frozenset(
    'i me my mine myself you your yours yourself he him his himself she her '
    'hers herself it its itself we us our ours ourselves they them their '
    'theirs themselves someone somebody something anyone anybody anything '
    'everyone everybody everything nobody nothing none one ones who whom '
    'whose which what whatever whoever where when why how there here '
    "it's that's there's what's he's she's they're we're you're i'm".split()
)

#: Prepositions, including the ones captions use for places.
PREPOSITIONS = frozenset(
    'about above across after against along alongside amid among amongst '
    'around as at atop before behind below beneath beside besides between '
    'beyond by down during except for from in inside into like near nearby '
    'next of off on onto opposite out outside over past per through '
    'throughout to toward towards under underneath until up upon via with '
    'within without'.split()
)

#: Conjunctions.
CONJUNCTIONS = frozenset(
    'and or but nor so yet while because although though if then than '
    'whether since unless whereas plus'.split()
)

#: Auxiliaries, modals, their negations, and verb forms common in
#: captions that are rarely nouns (forms that often are, such as ``park``,
#: ``watch``, ``drink`` or ``leaves``, are not listed).
VERBS = frozenset(
    'am is are was were be been being do does did done have has had will '
    'would shall should can could may might must get gets got gotten '
    "isn't aren't wasn't weren't don't doesn't didn't haven't hasn't "
    "hadn't can't cannot couldn't won't wouldn't shouldn't "
    'sit sits sat stand stands stood lie lies lay lays hold holds held '
    'look looks walk walks ride rides rode ridden play plays eat eats ate '
    'eaten wear wears wore worn carry carries show shows shown go goes '
    'went gone come comes came make makes made take takes took taken use '
    'uses see sees seen wait waits try tries pose poses smile smiles run '
    'runs ran jump jumps throw throws threw thrown catch catches caught '
    'hit hits contain contains appear appears seem seems lean leans hang '
    'hangs hung read reads write writes wrote written talk talks pull '
    'pulls push pushes give gives gave given put puts keep keeps kept let '
    'lets follow follows grow grows grew grown drive drives drove driven '
    'move moves pass passes enjoy enjoys graze grazes swim swims swam '
    'sleep sleeps slept say says said stare stares gather gathers belong '
    'belongs become becomes became remain remains include includes fly '
    'flies flew flown'.split()
)

#: Adverbs and particles (most ``-ly`` adverbs are caught by the rule).
ADVERBS = frozenset(
    'very really just only not never always still even almost away '
    'together alone quite rather again already also too else ever maybe '
    'perhaps well soon now often outdoors indoors upstairs downstairs '
    'somewhere everywhere anywhere nowhere apart ahead yes close closely '
    'far sometimes upwards downwards afterwards'.split()
)

#: Cardinal and ordinal numerals and multipliers.
NUMERALS = frozenset(
    'zero one two three four five six seven eight nine ten eleven twelve '
    'thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty '
    'thirty forty fifty sixty seventy eighty ninety hundred hundreds '
    'thousand thousands million millions dozen dozens first second third '
    'fourth fifth sixth seventh eighth ninth tenth last once twice single '
    'double triple multiple'.split()
)

#: Colour adjectives (``orange`` and ``gold`` are lost as nouns).
COLOURS = frozenset(
    'red green blue yellow orange purple pink brown black white grey gray '
    'silver golden gold beige tan dark light bright pale colorful '
    'colourful multicolored multicoloured striped spotted checkered '
    'plaid'.split()
)

#: Size and shape adjectives, with comparative and superlative forms.
SIZES = frozenset(
    'big bigger biggest small smaller smallest large larger largest little '
    'tiny huge giant tall taller tallest short shorter shortest long longer '
    'longest wide narrow thick thin medium enormous massive mini high '
    'higher highest low lower lowest round square flat'.split()
)

#: Position words (``top``, ``side``, ``background``...), which captions
#: use for where things are, not for things.
POSITIONS = frozenset(
    'front back top bottom middle center centre left right side upper '
    'rear foreground background distance'.split()
)

#: Other adjectives common in captions.
ADJECTIVES = frozenset(
    'young old older new good bad nice beautiful pretty cute happy empty '
    'full open closed clean dirty wet dry hot cold warm fresh busy sunny '
    'cloudy snowy rainy grassy sandy rocky wooden metal metallic plastic '
    'different favorite favourite modern ancient vintage antique fancy '
    'plain simple real fake male female elderly professional lit '
    'electric local public private outdoor indoor'.split()
)

#: Nouns for the picture itself and for quantities (``a pair of shoes``):
#: true nouns, but not things in the image.
NON_OBJECT_NOUNS = frozenset(
    'image picture photo photograph pic shot snapshot view scene closeup '
    'close-up pair group bunch number variety kind type sort piece set '
    'thing things way'.split()
)

STOP_WORDS = (
    DETERMINERS
    | PRONOUNS
    | PREPOSITIONS
    | CONJUNCTIONS
    | VERBS
    | ADVERBS
    | NUMERALS
    | COLOURS
    | SIZES
    | POSITIONS
    | ADJECTIVES
    | NON_OBJECT_NOUNS
)

#: Nouns ending in ``-ing`` (the ``-ing`` rule drops the other words).
ING_NOUNS = frozenset(
    'building ceiling clothing painting string spring swing sling sibling '
    'pudding wedding icing frosting topping stuffing dressing railing '
    'awning evening morning bedding dumpling earring lightning sapling '
    'duckling seedling herring offspring'.split()
)

#: Nouns ending in ``-ly`` (the ``-ly`` rule drops the other words).
LY_NOUNS = frozenset(
    'family belly jelly lily bully rally assembly supply anomaly holly '
    'gully ally italy july'.split()
)

# --------------------------------------------------------------------------
# plurals
# --------------------------------------------------------------------------

#: Plurals that no suffix rule turns into their singular.
IRREGULAR_PLURALS = {
    'men': 'man',
    'women': 'woman',
    'children': 'child',
    'people': 'person',
    'feet': 'foot',
    'teeth': 'tooth',
    'geese': 'goose',
    'mice': 'mouse',
    'oxen': 'ox',
    'knives': 'knife',
    'wives': 'wife',
    'lives': 'life',
    'leaves': 'leaf',
    'loaves': 'loaf',
    'halves': 'half',
    'calves': 'calf',
    'shelves': 'shelf',
    'wolves': 'wolf',
    'scarves': 'scarf',
    'thieves': 'thief',
    'tomatoes': 'tomato',
    'potatoes': 'potato',
    'heroes': 'hero',
    'mangoes': 'mango',
    'volcanoes': 'volcano',
    'buses': 'bus',
    'lenses': 'lens',
    'cacti': 'cactus',
    'skis': 'ski',
    'taxis': 'taxi',
    'kiwis': 'kiwi',
    'menus': 'menu',
    'fungi': 'fungus',
}

#: Words left as written: same in both numbers, only plural, or ending in
#: ``s`` in the singular where the suffix rules would cut them.
INVARIANT_NOUNS = frozenset(
    'sheep deer fish aircraft species series news pants jeans shorts '
    'trousers scissors glasses sunglasses eyeglasses goggles headphones '
    'binoculars clothes stairs pajamas pyjamas overalls tongs pliers '
    'gas canvas atlas christmas lens bus physics electronics'.split()
)

#: ``-ies`` words whose singular ends in ``-ie``, not ``-y``.
_IE_PLURALS = frozenset(
    'movies cookies zombies calories brownies selfies smoothies hoodies '
    'rookies goalies pies ties lies dies hippies veggies collies '
    'birdies'.split()
)

#: ``-ches`` words whose singular ends in ``-che``.
_CHE_PLURALS = frozenset(
    'headaches mustaches moustaches caches niches avalanches earaches '
    'toothaches quiches cliches'.split()
)


def singularize(word: str) -> str:
    """The singular of a lower-case English plural noun, by the rules in
    the module docstring; any other word is returned unchanged."""
    if word in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[word]
    if word in INVARIANT_NOUNS or len(word) < 3 or not word.endswith('s'):
        return word
    if word.endswith('sses'):
        return word[:-2]
    if word.endswith(('ches', 'shes', 'xes', 'zzes')):
        return word[:-1] if word in _CHE_PLURALS else word[:-2]
    if word.endswith('ies') and len(word) > 4:
        if word in _IE_PLURALS or word[-4] in 'aeiou':
            return word[:-1]
        return word[:-3] + 'y'
    if word.endswith(('ss', 'us', 'is')):
        return word
    return word[:-1]


# --------------------------------------------------------------------------
# words and vocabularies
# --------------------------------------------------------------------------

_WORD = re.compile(r"[a-z]+(?:['\-][a-z]+)*'?")


def split_words(text: str) -> list[str]:
    """Lower-case words of ``text`` (letters with inner ``-`` or ``'``),
    with a possessive ``'s`` or trailing ``'`` removed."""
    words = []
    for word in _WORD.findall(text.lower()):
        if word.endswith("'s"):
            word = word[:-2]
        word = word.rstrip("'")
        if word:
            words.append(word)
    return words


VocabularySource = str | os.PathLike | Iterable[str]

#: The class name that a vocabulary file skips (see
#: :meth:`NounVocabulary.build`).
BACKGROUND = 'background'


@dataclass(frozen=True)
class NounVocabulary:
    """Known nouns and phrases, as space-joined :func:`split_words` forms.

    Attributes:
        phrases: The entries (``'dog'``, ``'traffic light'``).
        max_words: Words in the longest entry.
    """

    phrases: frozenset[str]
    max_words: int

    @classmethod
    def build(cls, source: VocabularySource) -> NounVocabulary:
        """From an iterable of nouns, or the path of a UTF-8 text file with
        one noun per line.

        In a file, blank lines, lines starting with ``#`` and a line
        ``background`` are skipped, so a segmentation data set's
        ``classes.txt`` (``background`` first, then the classes) is a
        vocabulary as it is: captions say ``background`` for where things
        are, and it is not a thing whose noun the loss should contrast.
        """
        if isinstance(source, NounVocabulary):
            return source
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f'vocabulary file not found: {path} (pass a list of '
                    'nouns for a vocabulary in memory)'
                )
            with open(path, encoding='utf-8') as f:
                entries = [
                    line.strip()
                    for line in f
                    if line.strip()
                    and not line.lstrip().startswith('#')
                    and line.strip().lower() != BACKGROUND
                ]
            where = f'vocabulary file {path}'
        else:
            entries = list(source)
            where = 'vocabulary'
        phrases = set()
        for i, entry in enumerate(entries):
            if not isinstance(entry, str):
                raise TypeError(
                    f'{where}: entry {i} must be a str, got '
                    f'{type(entry).__name__}'
                )
            words = split_words(entry)
            if not words:
                raise ValueError(f'{where}: entry {i} {entry!r} has no word')
            phrases.add(' '.join(words))
        if not phrases:
            raise ValueError(f'{where} is empty')
        max_words = max(phrase.count(' ') + 1 for phrase in phrases)
        return cls(frozenset(phrases), max_words)

    def match(self, words: Sequence[str], start: int) -> tuple[str, int]:
        """The longest entry at ``words[start:]`` and its number of words,
        or ``('', 0)``. The last word of a candidate may be a plural of
        the entry's (see the module docstring)."""
        longest = min(self.max_words, len(words) - start)
        for n in range(longest, 0, -1):
            head = words[start : start + n - 1]
            last = words[start + n - 1]
            for form in _singular_candidates(last):
                phrase = ' '.join([*head, form])
                if phrase in self.phrases:
                    return phrase, n
        return '', 0


def _singular_candidates(word: str) -> list[str]:
    candidates = [word, singularize(word)]
    if word.endswith('s'):
        candidates.append(word[:-1])
    if word.endswith('es'):
        candidates.append(word[:-2])
    return candidates


def _is_noun(word: str) -> bool:
    """Rule-based test of step 2 in the module docstring, on the singular
    form (the caller checks the word as written too)."""
    if len(word) < 2 or word in STOP_WORDS:
        return False
    if '-' in word and all(part in STOP_WORDS for part in word.split('-')):
        return False
    if word.endswith('ing') and len(word) > 4:
        return word in ING_NOUNS
    if (
        word.endswith('ed')
        and len(word) > 4
        and not word.endswith(('eed', 'bed', 'shed', 'sled'))
    ):
        return False
    if word.endswith('ly') and len(word) > 4 and not word.endswith('fly'):
        return word in LY_NOUNS
    return True


def extract_nouns(
    caption: str,
    max_nouns: int | None = None,
    vocabulary: VocabularySource | NounVocabulary | None = None,
) -> list[str]:
    """The nouns of ``caption``, singular, in order of first appearance.

    Args:
        caption: One caption.
        max_nouns: Keep at most this many (``None``: all).
        vocabulary: Keep only these nouns/phrases (see the module
            docstring); ``None`` uses the stop-list rules.

    Returns:
        Distinct nouns (vocabulary entries in vocabulary mode).
    """
    if not isinstance(caption, str):
        raise TypeError(f'caption must be a str, got {type(caption).__name__}')
    if max_nouns is not None and max_nouns < 1:
        raise ValueError(f'max_nouns must be >= 1, got {max_nouns}')
    words = split_words(caption)
    nouns: list[str] = []
    if vocabulary is not None:
        vocabulary = NounVocabulary.build(vocabulary)
        i = 0
        while i < len(words):
            phrase, n = vocabulary.match(words, i)
            if n:
                if phrase not in nouns:
                    nouns.append(phrase)
                i += n
            else:
                i += 1
            if max_nouns is not None and len(nouns) == max_nouns:
                break
        return nouns
    for word in words:
        if word in STOP_WORDS:
            continue
        noun = singularize(word)
        if noun in nouns or not _is_noun(noun):
            continue
        nouns.append(noun)
        if max_nouns is not None and len(nouns) == max_nouns:
            break
    return nouns
