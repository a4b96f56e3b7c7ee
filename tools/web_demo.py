"""Zero-shot segmentation in the browser: upload an image, name the classes.

    python tools/web_demo.py CONFIG CHECKPOINT [--port 7860]
        [--host 127.0.0.1] [--device cpu|cuda:0] [--classes "cat,dog"]
        [--max-side 4096] [--examples DIR] [--cfg-options k=v ...]

Serves a page (Gradio; `pip install -e ".[demo]"`) where one uploads an
image or picks a bundled example, types class names (comma separated),
chooses the prompt templates and the background threshold, and sees side by
side the class overlay and each grouping stage's groups, with a legend
giving every class's colour and share of the pixels. It runs what
tools/visualize_groups.py runs (mixreorg_mmseg.apis: one whole-image
forward pass gives the groups and the classes; mixreorg_mmseg.utils.
seg_drawing draws them), on a model loaded once; checkpoints are ours or
converted GroupViT weights (tools/model_converters/groupvit2mmseg.py).
Bad input (no classes, a class named twice, a file that is not an image, an
image over --max-side) gets a message on the page, and the server goes on
serving.
"""

from __future__ import annotations

import argparse
import html
import logging
import os
import os.path as osp
import sys
import time
import warnings

import numpy as np

import mixreorg_mmseg  # noqa: F401  (mmseg on mmcv-lite, safe checkpoints)
from mixreorg_mmseg.apis import (
    init_zero_shot_model,
    parse_class_names,
    set_zero_shot_query,
    zero_shot_groups,
)
from mixreorg_mmseg.models.text_encoders import PROMPT_TEMPLATES
from mixreorg_mmseg.utils.seg_drawing import (
    class_shares,
    draw_class_mask,
    format_shares,
    stage_panels,
    upscale,
)

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: synthetic-world test images (tools/misc/make_synthetic_world.py) and
#: their classes.txt (one line, comma separated)
EXAMPLES = osp.join(REPO_ROOT, 'demo', 'examples')
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
#: the prompt-template choice that keeps the config's templates when they
#: are a list rather than a name of PROMPT_TEMPLATES
CONFIG_TEMPLATES = 'config'

logger = logging.getLogger('web_demo')


class BadInput(ValueError):
    """An input the page explains to its user (no stack trace)."""


def read_image(path: str, max_side: int) -> np.ndarray:
    """The ``(H, W, 3)`` RGB image in ``path`` (EXIF orientation applied).

    Raises:
        BadInput: not an image file, or a side longer than ``max_side``
            (read from the header, before the pixels are decoded).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    name = osp.basename(path)
    not_image = BadInput(
        f'{name} is not an image file that can be read (upload a PNG, JPEG, '
        'BMP or WebP image)'
    )
    try:
        image = Image.open(path)  # reads the header only
    except Image.DecompressionBombError:
        raise BadInput(
            f'{name} has too many pixels to be opened safely: this demo '
            f'takes images of at most {max_side} px a side (--max-side)'
        ) from None
    except (UnidentifiedImageError, OSError):
        raise not_image from None
    with image:
        width, height = image.size
        if max(width, height) > max_side:
            raise BadInput(
                f'{name} is {width} x {height} px: this demo takes images '
                f'of at most {max_side} px a side (--max-side); make it '
                'smaller first'
            )
        try:
            return np.asarray(ImageOps.exif_transpose(image).convert('RGB'))
        except (OSError, SyntaxError, ValueError):
            # a truncated or malformed file fails when its pixels are read
            raise not_image from None


def legend_html(classes, palette, shares) -> str:
    """A table: each class's colour, name and share of the pixels, with a
    bar as long as the share."""
    rows = []
    for name, color, share in zip(classes, palette, shares, strict=True):
        rgb = 'rgb({}, {}, {})'.format(*(int(c) for c in color))
        box = 'display:inline-block;height:0.9em;vertical-align:middle;'
        rows.append(
            '<tr class="legend-row">'
            f'<td><span style="{box}width:1.6em;background:{rgb};'
            'border:1px solid #444"></span></td>'
            f'<td class="legend-class">{html.escape(name)}</td>'
            f'<td class="legend-share" style="text-align:right">'
            f'{100 * share:.1f}%</td>'
            f'<td style="width:8em"><span style="{box}'
            f'width:{100 * share:.1f}%;background:{rgb}"></span></td></tr>'
        )
    return (
        '<table class="legend-table" style="width:auto">'
        '<tr><th></th><th>class</th><th>pixels</th><th></th></tr>'
        + ''.join(rows)
        + '</table>'
    )


class WebSegmenter:
    """The page's work: one request in, the pictures and texts out.

    Holds the model (loaded once) and changes only what the user asks
    about (classes, templates, background threshold) between requests.
    Requests must not overlap (the page runs one at a time): they change
    the model's head.

    Args:
        model: from ``init_zero_shot_model``.
        max_side: the longest image side accepted.
    """

    def __init__(self, model, max_side: int = 4096):
        self.model = model
        self.max_side = max_side
        head = model.decode_head
        self.config_templates = head.templates
        self.config_bg_thresh = head.bg_thresh
        self.num_stages = len(model.backbone.num_output_groups)

    @property
    def template_choices(self) -> list[str]:
        """The named template sets, and ``'config'`` when the config's
        templates are a list of its own."""
        names = list(PROMPT_TEMPLATES)
        if isinstance(self.config_templates, str):
            return names
        return [CONFIG_TEMPLATES, *names]

    @property
    def default_templates(self) -> str:
        if isinstance(self.config_templates, str):
            return self.config_templates
        return CONFIG_TEMPLATES

    def segment(
        self,
        image_path: str | None,
        class_text: str,
        templates: str,
        background: bool,
        bg_thresh: float,
        opacity: float = 0.5,
    ) -> dict:
        """Segment one uploaded image.

        Args:
            image_path: the uploaded file (None: nothing uploaded).
            class_text: comma-separated class names.
            templates: a name of ``PROMPT_TEMPLATES`` or ``'config'``.
            background: whether pixels no class claims are background.
            bg_thresh: the background threshold, when ``background``.
            opacity: of the class and group colours.

        Returns:
            ``overlay``: the classes drawn on the image, ``(H', W', 3)``
            RGB (the image enlarged as ``seg_drawing.upscale`` does);
            ``groups``: per stage, its groups drawn likewise, with
            ``titles``; ``classes``, ``palette`` and ``shares`` (``[K]``)
            by class; ``legend``: HTML; ``summary``: one line.

        Raises:
            BadInput: no image, bad class names, an unreadable or too
                large image, a bad threshold or template choice.
        """
        start = time.perf_counter()
        if not image_path:
            raise BadInput('upload an image (or pick an example) first')
        try:
            names = parse_class_names(class_text or '')
        except ValueError as error:
            raise BadInput(str(error)) from None
        image = read_image(image_path, self.max_side)
        if templates == CONFIG_TEMPLATES:
            templates = self.config_templates
        elif templates not in PROMPT_TEMPLATES:
            raise BadInput(
                f'unknown prompt templates {templates!r}; choose one of '
                f'{self.template_choices}'
            )
        try:
            set_zero_shot_query(
                self.model,
                names,
                bg_thresh=float(bg_thresh) if background else None,
                templates=templates,
            )
        except (ValueError, TypeError) as error:
            raise BadInput(str(error)) from None
        # the model reads BGR, as mmcv.imread gives it
        groups, mask = zero_shot_groups(
            self.model, np.ascontiguousarray(image[..., ::-1])
        )
        meta = self.model.dataset_meta
        classes, palette = meta['classes'], meta['palette']
        image, maps = upscale(image, [*groups, mask])
        groups, mask = maps[:-1], maps[-1]
        panels, titles = stage_panels(
            image, groups, self.model.backbone.num_output_groups, opacity
        )
        shares = class_shares(mask, len(classes))
        overlay = draw_class_mask(image, mask, classes, palette, opacity)
        seconds = time.perf_counter() - start
        return dict(
            overlay=overlay,
            groups=panels,
            titles=titles,
            classes=classes,
            palette=palette,
            shares=shares,
            legend=legend_html(classes, palette, shares),
            summary=(
                f'{format_shares(classes, shares)} ({seconds:.2f} s on '
                f'{next(self.model.parameters()).device})'
            ),
        )


def import_gradio():
    """Gradio, or exit with how to install it (the ``demo`` extra)."""
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    try:
        import gradio
    except ImportError:
        sys.exit(
            'tools/web_demo.py needs Gradio, an optional dependency: '
            'pip install -e ".[demo]" (with -c requirements/ci.txt for the '
            'tested versions)'
        )
    return gradio


def example_rows(folder: str) -> list[list[str]]:
    """``[image path, class names]`` for each image in ``folder``; the
    class names are its classes.txt (empty when there is none)."""
    if not osp.isdir(folder):
        return []
    names_file = osp.join(folder, 'classes.txt')
    names = ''
    if osp.isfile(names_file):
        with open(names_file, encoding='utf-8') as f:
            names = f.read().strip()
    return [
        [osp.join(folder, name), names]
        for name in sorted(os.listdir(folder))
        if name.lower().endswith(IMAGE_SUFFIXES)
    ]


def hand_on_unreadable(preprocess):
    """``gr.Image.preprocess`` that hands on an uploaded file it cannot
    open (its path), so that :func:`read_image` says what is wrong with it
    on the page; Gradio's own failure shows a bare "Error"."""

    def checked(payload):
        try:
            return preprocess(payload)
        except Exception:  # noqa: BLE001  (read_image explains it)
            return None if payload is None else payload.path

    return checked


def stage_label(index: int) -> str:
    return f'stage {index + 1} groups'


def build_page(
    segmenter: WebSegmenter,
    classes: str = '',
    examples: list[list[str]] | None = None,
):
    """The Gradio page (``gr.Blocks``) around ``segmenter``."""
    gr = import_gradio()

    head = segmenter.model.decode_head
    score = (
        'cosine similarity with the class prompt'
        if getattr(head, 'bg_score', 'probability') == 'cosine'
        else 'class probability'
    )
    stages = segmenter.num_stages
    with gr.Blocks(title='mixreorg-mmseg zero-shot demo') as page:
        gr.Markdown(
            '## Zero-shot segmentation\n'
            'Upload an image or pick an example, name the classes to find '
            '(comma separated), press **Segment**. Left: the classes; '
            'right: what each grouping stage grouped.'
        )
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(
                    label='image',
                    type='filepath',
                    # hand on the file as uploaded: read_image checks its
                    # size before any pixel is decoded
                    image_mode=None,
                    sources=['upload'],
                    elem_id='image-input',
                )
                image.preprocess = hand_on_unreadable(image.preprocess)
                class_box = gr.Textbox(
                    label='classes (comma separated)',
                    value=classes,
                    placeholder='cat, dog, grass',
                    elem_id='classes-input',
                )
                templates = gr.Dropdown(
                    segmenter.template_choices,
                    value=segmenter.default_templates,
                    label='prompt templates',
                    info='a class is the mean of its prompts, one per '
                    'template (simple: "a photo of a {}.")',
                    elem_id='templates-input',
                )
                background = gr.Checkbox(
                    value=segmenter.config_bg_thresh is not None,
                    label='background class',
                    info='pixels whose best class scores under the '
                    'threshold are background',
                    elem_id='background-input',
                )
                bg_thresh = gr.Slider(
                    0.0,
                    1.0,
                    value=(
                        0.5
                        if segmenter.config_bg_thresh is None
                        else segmenter.config_bg_thresh
                    ),
                    step=0.01,
                    label='background threshold',
                    info=f'compared with the {score}',
                    elem_id='bg-thresh-input',
                )
                opacity = gr.Slider(
                    0.1, 1.0, value=0.5, step=0.05, label='opacity'
                )
                button = gr.Button(
                    'Segment', variant='primary', elem_id='segment-button'
                )
                if examples:
                    gr.Examples(
                        examples,
                        inputs=[image, class_box],
                        label='examples (synthetic world test images)',
                    )
            with gr.Column(scale=3):
                status = gr.Markdown(elem_id='status')
                with gr.Row():
                    with gr.Column():
                        overlay = gr.Image(
                            label='classes',
                            type='numpy',
                            format='png',
                            interactive=False,
                            elem_id='overlay',
                        )
                        legend = gr.HTML(elem_id='legend')
                    group_images = [
                        gr.Image(
                            label=stage_label(i),
                            type='numpy',
                            format='png',
                            interactive=False,
                            elem_id=f'groups-stage-{i + 1}',
                        )
                        for i in range(stages)
                    ]

        def failed(message: str) -> list:
            cleared = [
                gr.Image(value=None, label=stage_label(i))
                for i in range(stages)
            ]
            return [None, *cleared, '', f'**Error:** {message}']

        def answer(*inputs):
            try:
                out = segmenter.segment(*inputs)
            except BadInput as error:
                return failed(str(error))
            except Exception as error:  # noqa: BLE001  (keep serving)
                logger.exception('segmentation failed')
                text = f'{type(error).__name__}: {error}'[:300]
                return failed(
                    f'the model failed on this image ({text}); the '
                    "server's log has the details"
                )
            # the stage titles replace the group images' labels
            groups = [
                gr.Image(value=panel, label=title)
                for panel, title in zip(
                    out['groups'], out['titles'], strict=True
                )
            ]
            return [out['overlay'], *groups, out['legend'], out['summary']]

        inputs = [image, class_box, templates, background, bg_thresh, opacity]
        outputs = [overlay, *group_images, legend, status]
        for event in (button.click, class_box.submit):
            event(
                answer,
                inputs,
                outputs,
                concurrency_limit=1,  # requests change the model's head
                # the pictures show the progress; the status line keeps
                # the last answer until the next one
                show_progress_on=[overlay, *group_images],
            )
    return page


def parse_args(argv=None):
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config with a ZeroShotGroupHead')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--host', default='127.0.0.1', help='(127.0.0.1)')
    parser.add_argument('--port', type=int, default=7860, help='(7860)')
    parser.add_argument(
        '--device',
        default=None,
        help='cpu, cuda:0... (default: cuda:0 when available, else cpu)',
    )
    parser.add_argument(
        '--classes',
        default=None,
        help='the class names the page starts with (default: those of the '
        'examples)',
    )
    parser.add_argument(
        '--examples',
        default=EXAMPLES,
        help='folder of example images and their classes.txt (default: the '
        "repository's demo/examples)",
    )
    parser.add_argument(
        '--max-side',
        type=int,
        default=4096,
        help='longest image side accepted, in pixels (4096)',
    )
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config keys (as tools/test.py)',
    )
    return parser.parse_args(argv)


def main(argv=None):
    import torch

    args = parse_args(argv)
    import_gradio()  # before the model: fail fast without the extra
    logging.basicConfig()  # a failed request's traceback, in the log
    # Gradio's queue sets pandas options that pandas 3 deprecates: noise
    warnings.filterwarnings('ignore', module='gradio.queueing')
    for path, what in (
        (args.config, 'config'),
        (args.checkpoint, 'checkpoint'),
    ):
        if not osp.isfile(path):
            sys.exit(f'{what} not found: {path}')
    examples = example_rows(args.examples)
    classes = args.classes
    if classes is None:
        classes = examples[0][1] if examples else ''
    try:
        # any two names: every request sets its own classes
        names = parse_class_names(classes) if classes else ['thing', 'stuff']
    except ValueError as error:
        sys.exit(f'--classes: {error}')
    device = args.device or ('cuda:0' if torch.cuda.is_available() else 'cpu')
    model = init_zero_shot_model(
        args.config,
        args.checkpoint,
        names,
        device=device,
        cfg_options=args.cfg_options,
    )
    segmenter = WebSegmenter(model, max_side=args.max_side)
    page = build_page(segmenter, classes=classes, examples=examples)
    print(f'serving http://{args.host}:{args.port} (Ctrl+C stops)', flush=True)
    page.queue(default_concurrency_limit=1).launch(
        server_name=args.host,
        server_port=args.port,
        share=False,
        ssr_mode=False,
        show_error=False,
        max_file_size='50mb',
        allowed_paths=[args.examples] if examples else None,
    )


if __name__ == '__main__':
    main()
