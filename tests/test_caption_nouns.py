"""Rule-based caption nouns, noun prompts and prompt templates."""

import pytest
import torch
from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

from mixreorg_mmseg.models.text_encoders import (
    PROMPT_TEMPLATES,
    NounPromptBuilder,
    extract_nouns,
    fill_templates,
    get_templates,
)
from mixreorg_mmseg.utils.caption_nouns import singularize


@pytest.mark.parametrize(
    'caption, nouns',
    [
        (
            'A man riding a brown horse on the beach.',
            ['man', 'horse', 'beach'],
        ),
        (
            'Two dogs are playing with a red frisbee in the park',
            ['dog', 'frisbee', 'park'],
        ),
        (
            "The children's toys on the shelves next to three puppies",
            ['child', 'toy', 'shelf', 'puppy'],
        ),
        (
            'A black-and-white photo of people walking past tall buildings.',
            ['person', 'building'],
        ),
        (
            'Boxes, benches and glasses; 2 buses.',
            ['box', 'bench', 'glasses', 'bus'],
        ),
        ('The dog chases the dog', ['dog', 'chase']),  # limit: verb kept
        ('', []),
    ],
)
def test_rules_find_the_nouns_of_known_captions(caption, nouns):
    assert extract_nouns(caption) == nouns


@pytest.mark.parametrize(
    'plural, singular',
    [
        ('dogs', 'dog'),
        ('dresses', 'dress'),
        ('dishes', 'dish'),
        ('puppies', 'puppy'),
        ('movies', 'movie'),
        ('keys', 'key'),
        ('knives', 'knife'),
        ('gloves', 'glove'),
        ('horses', 'horse'),
        ('grass', 'grass'),
        ('bus', 'bus'),
        ('tennis', 'tennis'),
        ('sheep', 'sheep'),
        ('dog', 'dog'),
    ],
)
def test_singularize_only_changes_plurals(plural, singular):
    assert singularize(plural) == singular


def test_vocabulary_keeps_only_known_words_and_two_word_phrases(tmp_path):
    vocabulary = ['traffic light', 'car', 'cat', 'person', 'orange']
    caption = 'An orange cat on a car near traffic lights and people.'
    expected = ['orange', 'cat', 'car', 'traffic light', 'person']
    assert extract_nouns(caption, vocabulary=vocabulary) == expected
    path = tmp_path / 'nouns.txt'
    path.write_text('# classes\ntraffic light\n\ncar\ncat\nperson\norange\n')
    assert extract_nouns(caption, vocabulary=str(path)) == expected
    assert extract_nouns('a light on a car', vocabulary=vocabulary) == ['car']


def test_vocabulary_errors_name_the_file_or_entry(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.txt'):
        extract_nouns('a cat', vocabulary=str(tmp_path / 'missing.txt'))
    with pytest.raises(ValueError, match='empty'):
        extract_nouns('a cat', vocabulary=[])
    with pytest.raises(TypeError, match='entry 1'):
        extract_nouns('a cat', vocabulary=['cat', 3])


def test_max_nouns_caps_in_order_of_first_appearance():
    caption = 'a cat, a dog, a cat, a bird and a horse'
    assert extract_nouns(caption, max_nouns=3) == ['cat', 'dog', 'bird']
    assert extract_nouns(caption, 2, vocabulary=['horse', 'dog']) == [
        'dog',
        'horse',
    ]


def test_prompt_builder_lays_out_b_times_k_prompts_with_valid_mask():
    builder = NounPromptBuilder(max_nouns=3)
    prompts, valid = builder(
        ['a dog and a cat', 'the sky', 'a man, a horse, a hat and a dog']
    )
    assert prompts == [
        'a photo of a dog.',
        'a photo of a cat.',
        '',
        'a photo of a sky.',
        '',
        '',
        'a photo of a man.',
        'a photo of a horse.',
        'a photo of a hat.',
    ]
    assert valid.dtype == torch.bool
    assert valid.tolist() == [
        [True, True, False],
        [True, False, False],
        [True, True, True],
    ]


def test_prompt_builder_draws_templates_reproducibly_with_a_seed():
    captions = ['a dog and a cat', 'a horse'] * 8
    first, _ = NounPromptBuilder(2, 'imagenet', seed=0)(captions)
    second, _ = NounPromptBuilder(2, 'imagenet', seed=0)(captions)
    assert first == second
    used = {p for p in first if p}
    assert len(used) > 3  # several templates drawn
    templates = PROMPT_TEMPLATES['imagenet']
    nouns = ['dog', 'cat', 'horse']
    allowed = {t.format(n) for t in templates for n in nouns}
    assert used <= allowed


def test_prompt_builder_with_vocabulary_and_bad_arguments():
    builder = NounPromptBuilder(2, vocabulary=['traffic light'])
    prompts, valid = builder(['two traffic lights', 'a dog'])
    assert prompts == ['a photo of a traffic light.', '', '', '']
    assert valid.tolist() == [[True, False], [False, False]]
    with pytest.raises(ValueError, match='max_nouns'):
        NounPromptBuilder(0)
    with pytest.raises(TypeError, match='captions'):
        builder('a dog')


def test_templates_are_open_clip_sets_as_format_strings():
    imagenet = get_templates('imagenet')
    assert len(imagenet) == len(OPENAI_IMAGENET_TEMPLATES) == 80
    assert imagenet[0].format('dog') == OPENAI_IMAGENET_TEMPLATES[0]('dog')
    assert get_templates('simple') == ('a photo of a {}.',)
    assert len(get_templates('imagenet_simple')) == 7
    assert get_templates(['{} here', 'a {}.']) == ('{} here', 'a {}.')


@pytest.mark.parametrize(
    'templates, error',
    [
        ('nope', KeyError),
        ([], ValueError),
        (['no field'], ValueError),
        (['{} and {}'], ValueError),
        (['{name}'], ValueError),
        (['{:>3}'], ValueError),
        (3, TypeError),
    ],
)
def test_bad_templates_raise(templates, error):
    with pytest.raises(error, match='templates'):
        get_templates(templates)


def test_fill_templates_is_name_major():
    sentences = fill_templates(['cat', 'dog'], ['a {}.', 'the {}!'])
    assert sentences == ['a cat.', 'the cat!', 'a dog.', 'the dog!']


def test_prompt_builder_reads_a_classes_file_at_first_use(tmp_path):
    path = tmp_path / 'classes.txt'
    builder = NounPromptBuilder(2, vocabulary=str(path))  # not written yet
    path.write_text('background\n\ndisc\nsquare\n')
    prompts, valid = builder(['a disc and a square on a dark background'])
    assert prompts == ['a photo of a disc.', 'a photo of a square.']
    assert valid.tolist() == [[True, True]]
    assert builder.vocabulary.phrases == {'disc', 'square'}


def test_prompt_builder_names_a_missing_or_empty_classes_file(tmp_path):
    missing = NounPromptBuilder(vocabulary=str(tmp_path / 'classes.txt'))
    with pytest.raises(FileNotFoundError, match=r'classes\.txt.*noun_prompts'):
        missing(['a disc'])
    path = tmp_path / 'only_background.txt'
    path.write_text('background\n\n')
    with pytest.raises(ValueError, match=r'only_background.*empty.*noun_'):
        NounPromptBuilder(vocabulary=str(path))(['a disc'])
