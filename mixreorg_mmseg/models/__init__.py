"""Models (registered in ``mmseg.registry.MODELS``).

``backbones``: image encoders (GroupViT) and the grouping block;
``text_encoders``: the CLIP-style text encoder, noun prompts;
``losses``: one loss per module; ``necks``: projection heads into the joint
space; ``segmentors``: the image-text segmentors.
"""

from . import backbones, losses, necks, segmentors, text_encoders  # noqa: F401
