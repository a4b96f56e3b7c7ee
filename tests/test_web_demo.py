"""tools/web_demo.py: its requests as the page sends them, and the page
itself in a real browser (Debian's chromium, driven by Playwright).

The model is the main job's config (the synthetic world's tiny MixReorg)
with random weights: what is tested is the path from an upload to the
pictures, not what a trained model finds.
"""

import ast
import copy
import importlib.util
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from mixreorg_mmseg.apis import (
    init_zero_shot_model,
    prepare_image,
    set_zero_shot_query,
    zero_shot_groups,
)
from mixreorg_mmseg.apis.zero_shot import stage_groups
from mixreorg_mmseg.utils.safe_checkpoint import safe_torch_save
from mixreorg_mmseg.utils.seg_drawing import class_shares, upscale

from .conftest import REPO_ROOT

WORLD_CONFIG = osp.join(
    REPO_ROOT, 'configs/synthetic_world/mixreorg_tiny_synthetic-world-64x64.py'
)
WEB_DEMO = osp.join(REPO_ROOT, 'tools', 'web_demo.py')
EXAMPLES = osp.join(REPO_ROOT, 'demo', 'examples')
EXAMPLE = osp.join(EXAMPLES, 'unseen_00001.jpg')
# Debian's chromium on the PATH, or the binary the CHROMIUM variable names
CHROMIUM = os.environ.get('CHROMIUM') or shutil.which('chromium') or ''
#: Chromium without anything that reaches outside the machine
CHROMIUM_ARGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
]


def load_web_demo():
    spec = importlib.util.spec_from_file_location('web_demo', WEB_DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def web_demo():
    return load_web_demo()


@pytest.fixture(scope='module')
def world_checkpoint(tmp_path_factory):
    """The main job's model with random weights, saved as training saves
    it (MMEngine's format, the project's safe save)."""
    from mmseg.registry import MODELS

    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(Config.fromfile(WORLD_CONFIG).model))
    path = tmp_path_factory.mktemp('web_demo') / 'world.pth'
    safe_torch_save({'meta': {}, 'state_dict': model.state_dict()}, path)
    return str(path)


@pytest.fixture(scope='module')
def segmenter(web_demo, world_checkpoint):
    model = init_zero_shot_model(
        WORLD_CONFIG, world_checkpoint, ['disc', 'square'], device='cpu'
    )
    return web_demo.WebSegmenter(model, max_side=512)


def request(
    segmenter,
    image=EXAMPLE,
    classes='disc, square, triangle',
    templates='simple',
    background=True,
    bg_thresh=0.5,
):
    """What the page sends when Segment is pressed."""
    return segmenter.segment(image, classes, templates, background, bg_thresh)


def test_a_request_is_what_the_inference_api_computes(tmp_path, segmenter):
    # a PNG: the page (Pillow) and the API (OpenCV) decode it identically
    png = str(tmp_path / 'example.png')
    Image.open(EXAMPLE).save(png)
    out = request(segmenter, png)
    classes = ('background', 'disc', 'square', 'triangle')
    assert out['classes'] == classes
    # the 64 px image is drawn at 256 px, as the command-line tools draw it
    assert out['overlay'].shape == (256, 256, 3)
    assert [g.shape for g in out['groups']] == [(256, 256, 3)]
    assert out['titles'][0].startswith('stage 1: ')
    groups, mask = zero_shot_groups(segmenter.model, png)
    _, (big_mask,) = upscale(np.zeros((64, 64, 3), np.uint8), [mask])
    np.testing.assert_array_equal(
        out['shares'], class_shares(big_mask, len(classes))
    )
    for name in classes:
        assert f'>{name}</td>' in out['legend']
    assert 'on cpu' in out['summary']


def test_the_groups_are_the_backbones_of_the_class_pass(segmenter):
    # zero_shot_groups encodes the image once: its groups are those a
    # separate backbone pass gives
    model = segmenter.model
    groups, _ = zero_shot_groups(model, EXAMPLE)
    with torch.no_grad():
        feats = model.extract_feat(prepare_image(model, EXAMPLE)['inputs'])
    expected = stage_groups(feats['output'], (64, 64))
    assert len(groups) == len(expected) == 1
    np.testing.assert_array_equal(groups[0], expected[0])


@pytest.mark.parametrize('mode', ['L', 'RGBA', 'P'])
def test_any_image_mode_is_read_as_rgb(tmp_path, segmenter, mode):
    path = str(tmp_path / f'example_{mode}.png')
    Image.open(EXAMPLE).convert(mode).save(path)
    out = request(segmenter, path)
    assert out['overlay'].shape == (256, 256, 3)


def test_background_and_templates_follow_each_request(segmenter):
    head = segmenter.model.decode_head
    out = request(segmenter, background=False, templates='imagenet_simple')
    assert out['classes'] == ('disc', 'square', 'triangle')
    assert head.bg_thresh is None
    # 3 classes in each of the 7 templates
    assert len(head.prompts()) == 3 * 7
    out = request(segmenter, bg_thresh=0.25)
    assert out['classes'][0] == 'background' and head.bg_thresh == 0.25
    assert len(head.prompts()) == 3


@pytest.mark.parametrize(
    'case, message',
    [
        ('no image', 'upload an image'),
        ('no classes', 'no class names'),
        ('a class twice', r"repeat \['disc'\]"),
        ('one class', 'at least 2 classes'),
        ('a text file', 'notes.png is not an image'),
        ('a truncated image', 'cut.png is not an image'),
        ('a huge image', 'wide.png is 600 x 2 px'),
        ('unknown templates', 'unknown prompt templates'),
    ],
)
def test_a_bad_request_is_explained_and_changes_nothing(
    tmp_path, web_demo, segmenter, case, message
):
    request(segmenter, classes='disc, square')
    head = segmenter.model.decode_head
    before = (head.class_names, head.bg_thresh, head.templates)
    notes = tmp_path / 'notes.png'
    notes.write_text('not a picture\n')
    cut = tmp_path / 'cut.png'
    Image.open(EXAMPLE).save(cut)
    cut.write_bytes(cut.read_bytes()[:200])
    wide = tmp_path / 'wide.png'
    Image.new('RGB', (600, 2)).save(wide)  # max_side is 512 here
    kwargs = {
        'no image': dict(image=None),
        'no classes': dict(classes=' '),
        'a class twice': dict(classes='disc, square, disc'),
        'one class': dict(classes='disc', background=False),
        'a text file': dict(image=str(notes)),
        'a truncated image': dict(image=str(cut)),
        'a huge image': dict(image=str(wide)),
        'unknown templates': dict(templates='fancy'),
    }[case]
    with pytest.raises(web_demo.BadInput, match=message):
        request(segmenter, **kwargs)
    assert (head.class_names, head.bg_thresh, head.templates) == before


def test_a_failed_query_leaves_the_head_as_it_was(segmenter):
    model = segmenter.model
    set_zero_shot_query(model, ['disc', 'square'], bg_thresh=0.5)
    head = model.decode_head
    before = (head.class_names, head.bg_thresh, head.templates)
    with pytest.raises(ValueError, match='at least 2 classes'):
        # no background: one class is too few
        set_zero_shot_query(model, ['disc'], bg_thresh=None)
    with pytest.raises(ValueError, match=r'1\.5 must be in \[0, 1\]'):
        set_zero_shot_query(model, ['disc', 'square'], bg_thresh=1.5)
    with pytest.raises(KeyError, match='unknown prompt templates'):
        set_zero_shot_query(model, ['disc', 'square'], templates='fancy')
    assert (head.class_names, head.bg_thresh, head.templates) == before
    assert model.dataset_meta['classes'] == before[0]


def test_the_bundled_examples_are_small_world_images(web_demo):
    rows = web_demo.example_rows(EXAMPLES)
    assert len(rows) >= 3
    for path, classes in rows:
        assert os.path.getsize(path) < 10_000
        assert Image.open(path).size == (64, 64)
        assert 'disc' in classes.split(', ')


def test_without_the_demo_extra_the_tool_says_how_to_install_it(
    web_demo, monkeypatch
):
    monkeypatch.setitem(sys.modules, 'gradio', None)  # import fails
    with pytest.raises(SystemExit, match=r'pip install -e "\.\[demo\]"'):
        web_demo.import_gradio()


def test_only_the_web_demo_imports_gradio():
    # the core install does not have it (setup.cfg's demo extra)
    importers = []
    for folder in ('mixreorg_mmseg', 'tools'):
        for path in sorted(Path(REPO_ROOT, folder).rglob('*.py')):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or '']
                else:
                    continue
                if any(n.split('.')[0] == 'gradio' for n in names):
                    importers.append(path.relative_to(REPO_ROOT).as_posix())
    assert sorted(set(importers)) == ['tools/web_demo.py']


# -- in the browser ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture
def web_server(tmp_path, world_checkpoint):
    """tools/web_demo.py serving the main job's config on a free port of
    127.0.0.1 (or, with WEB_DEMO_CHECKPOINT, a trained checkpoint of it);
    yields its address, stops it afterwards."""
    pytest.importorskip('gradio', reason='the demo extra is not installed')
    checkpoint = os.environ.get('WEB_DEMO_CHECKPOINT', world_checkpoint)
    port = free_port()
    log_path = tmp_path / 'server.log'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    with open(log_path, 'w') as log:
        server = subprocess.Popen(
            [
                sys.executable,
                WEB_DEMO,
                WORLD_CONFIG,
                checkpoint,
                '--port',
                str(port),
                '--device',
                'cpu',
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f'http://127.0.0.1:{port}/'
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(
                    f'the server exited ({server.returncode}):\n'
                    + log_path.read_text()[-3000:]
                )
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail('no page after 180 s:\n' + log_path.read_text())
            time.sleep(0.5)
        yield url, server, log_path
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
def browser_page(tmp_path):
    """A page of headless Debian Chromium (a fresh profile) that can reach
    127.0.0.1 only."""
    sync_api = pytest.importorskip(
        'playwright.sync_api', reason='playwright is not installed'
    )
    if not (osp.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(
            f'no chromium executable ({CHROMIUM or "none on the PATH"}; '
            'apt-get install chromium, or set CHROMIUM)'
        )
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / 'chromium-profile'),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={'width': 1400, 'height': 1000},
        )
        try:
            page = context.new_page()
            page.route(
                '**/*',
                lambda route: (
                    route.continue_()
                    if route.request.url.startswith('http://127.0.0.1:')
                    else route.abort()
                ),
            )
            page.set_default_timeout(60_000)
            yield page
        finally:
            context.close()


def upload(page, path: str) -> None:
    """Upload ``path`` into the image box and wait until the page holds
    it (its preview points at the uploaded file)."""
    page.locator('#image-input input[type=file]').set_input_files(path)
    name = osp.basename(path)
    page.wait_for_selector(
        f'#image-input img[src$="{name}"]', state='attached'
    )


def segment(page, classes: str) -> str:
    """Type ``classes``, press Segment, wait for the answer; returns the
    status line."""
    status = page.locator('#status')
    before = status.inner_text()
    page.locator('#classes-input textarea').fill(classes)
    page.click('#segment-button')
    # an answer (not the progress timer shown meanwhile): an error or the
    # summary, which ends with the time taken on the device
    page.wait_for_function(
        "([before]) => { const s = document.querySelector('#status');"
        ' const text = s ? s.innerText : "";'
        ' return text !== before && /Error:| s on /.test(text); }',
        arg=[before],
    )
    return status.inner_text()


def overlay_size(page):
    return page.evaluate(
        "() => { const i = document.querySelector('#overlay img');"
        ' return i && i.complete ? [i.naturalWidth, i.naturalHeight] : null; }'
    )


@pytest.mark.browser
def test_the_page_segments_an_upload_and_explains_bad_input(
    tmp_path, browser_page, web_server
):
    url, server, log_path = web_server
    page = browser_page
    page.goto(url)
    upload(page, EXAMPLE)
    status = segment(page, 'disc, square, triangle')
    assert 'Error' not in status, status
    assert 'on cpu' in status
    page.wait_for_function(
        "() => { const i = document.querySelector('#overlay img');"
        ' return i && i.complete && i.naturalWidth > 0; }'
    )
    # 64 px drawn at 256 px (seg_drawing.upscale)
    assert overlay_size(page) == [256, 256]
    assert page.locator('#groups-stage-1 img').count() == 1
    legend = page.locator('#legend .legend-class').all_inner_texts()
    assert legend == ['background', 'disc', 'square', 'triangle']
    shot = os.environ.get('WEB_DEMO_SCREENSHOT')
    if shot:
        os.makedirs(osp.dirname(osp.abspath(shot)), exist_ok=True)
        page.screenshot(path=shot, full_page=True)

    status = segment(page, 'disc, square, disc')
    assert "class names 'disc, square, disc' repeat ['disc']" in status
    assert overlay_size(page) is None  # the stale result is gone
    status = segment(page, '')
    assert 'no class names given' in status

    notes = tmp_path / 'notes.png'
    notes.write_text('not a picture\n')
    upload(page, str(notes))
    status = segment(page, 'disc, square')
    assert 'notes.png is not an image file' in status

    # the server kept serving: a good request answers as the first did
    upload(page, EXAMPLE)
    status = segment(page, 'ring, star')
    assert 'Error' not in status and server.poll() is None, status
    page.wait_for_function(
        "() => { const i = document.querySelector('#overlay img');"
        ' return i && i.complete && i.naturalWidth > 0; }'
    )
    assert page.locator('#legend .legend-class').all_inner_texts() == [
        'background',
        'ring',
        'star',
    ]
    assert 'Traceback' not in page.content()
