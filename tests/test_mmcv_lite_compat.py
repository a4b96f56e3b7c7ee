"""mmcv-lite: MMSeg imports and builds; compiled ops fail loudly."""

import sys

import pytest
import torch

from mixreorg_mmseg.utils import mmcv_lite_compat
from tests.conftest import run_python

lite_only = pytest.mark.skipif(
    mmcv_lite_compat.compiled_ops_available(),
    reason='full mmcv installed: the stand-in is not used',
)


def test_stock_mmseg_model_builds_and_runs_after_import():
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=True)
    model = MODELS.build(
        dict(
            type='EncoderDecoder',
            data_preprocessor=dict(
                type='SegDataPreProcessor',
                mean=[0, 0, 0],
                std=[1, 1, 1],
                size=(32, 32),
            ),
            backbone=dict(
                type='VisionTransformer',
                img_size=32,
                patch_size=8,
                embed_dims=32,
                num_layers=2,
                num_heads=2,
                out_indices=(1,),
            ),
            decode_head=dict(
                type='FCNHead',
                in_channels=32,
                channels=16,
                num_convs=1,
                num_classes=3,
                in_index=0,
                norm_cfg=dict(type='BN', requires_grad=True),
            ),
            test_cfg=dict(mode='whole'),
        )
    )
    logits = model(torch.rand(2, 3, 32, 32), mode='tensor')
    assert logits.shape == (2, 3, 4, 4)


@lite_only
def test_compiled_op_call_names_the_op_and_the_fix():
    from mmcv.ops import nms

    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    with pytest.raises(
        mmcv_lite_compat.MissingCompiledOpError, match=r'"nms".*full mmcv'
    ):
        nms(boxes, torch.tensor([0.9, 0.8]), 0.5)


@lite_only
def test_mmengine_still_sees_no_full_mmcv():
    from mmengine.utils.dl_utils import mmcv_full_available

    assert isinstance(
        sys.modules['mmcv._ext'], mmcv_lite_compat._MissingExtModule
    )
    assert not mmcv_full_available()
    assert not mmcv_lite_compat.compiled_ops_available()


def test_install_is_idempotent():
    assert mmcv_lite_compat.install_mmcv_ext_stub() is False


@pytest.mark.slow
@lite_only
def test_without_the_stand_in_mmseg_models_fails_to_import():
    # documents why the compat module exists (and fails if mmseg stops
    # needing it, so the module can go)
    proc = run_python(['-c', 'import mmseg.models'])
    assert proc.returncode != 0
    assert "No module named 'mmcv._ext'" in proc.stderr


@pytest.mark.slow
def test_does_nothing_when_the_real_extension_is_present():
    code = (
        'import sys, types\n'
        '# a module that has every op, as the compiled extension does\n'
        'class Ext(types.ModuleType):\n'
        '    def __getattr__(self, name):\n'
        '        if name.startswith("__"):\n'
        '            raise AttributeError(name)\n'
        '        return lambda *a, **k: None\n'
        'real = Ext("mmcv._ext")\n'
        'sys.modules["mmcv._ext"] = real\n'
        'from mixreorg_mmseg.utils import mmcv_lite_compat as c\n'
        'assert c.install_mmcv_ext_stub() is False\n'
        'assert sys.modules["mmcv._ext"] is real\n'
        'assert c.compiled_ops_available()\n'
        'print("ok")\n'
    )
    proc = run_python(['-c', code])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == 'ok'
