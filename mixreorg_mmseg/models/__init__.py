"""Models (registered in ``mmseg.registry.MODELS``).

``backbones``: image encoders (GroupViT) and the grouping block;
``data_preprocessors``: JPEG decoding and augmentation on the device;
``decode_heads``: the zero-shot head (GroupViT's inference);
``mixers``: MixReorg's mixing plans and three-branch training encoder;
``text_encoders``: the CLIP-style text encoder, noun prompts;
``losses``: one loss per module; ``necks``: projection heads into the joint
space; ``segmentors``: the image-text segmentors.
"""

from . import (  # noqa: F401
    backbones,
    data_preprocessors,
    decode_heads,
    losses,
    mixers,
    necks,
    segmentors,
    text_encoders,
)
