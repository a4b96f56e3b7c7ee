"""Importing the package registers everything; every config builds."""

import glob
import importlib
import os.path as osp
import pkgutil
import sys

import pytest
from mmengine.config import Config

import mixreorg_mmseg
from tests.conftest import REPO_ROOT, run_python

CONFIGS = sorted(
    p
    for p in glob.glob(
        osp.join(REPO_ROOT, 'configs', '**', '*.py'), recursive=True
    )
    if '_base_' not in p
)


@pytest.mark.slow
def test_import_loads_every_module_of_the_package():
    # a module that `import mixreorg_mmseg` does not reach never registers
    # its classes: configs naming them would fail with "not in registry"
    code = (
        'import sys, pkgutil, mixreorg_mmseg\n'
        'names = [m.name for m in pkgutil.walk_packages('
        'mixreorg_mmseg.__path__, "mixreorg_mmseg.")]\n'
        'print("\\n".join(n for n in names if n not in sys.modules))\n'
    )
    proc = run_python(['-c', code])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [], (
        'not imported by the package: ' + proc.stdout
    )
    modules = [
        m.name
        for m in pkgutil.walk_packages(
            mixreorg_mmseg.__path__, 'mixreorg_mmseg.'
        )
    ]
    assert 'mixreorg_mmseg.datasets.folder_seg_dataset' in modules


def test_plugin_classes_are_in_mmseg_registries():
    from mmseg.registry import DATASETS

    from mixreorg_mmseg.datasets import FolderSegDataset

    assert DATASETS.get('FolderSegDataset') is FolderSegDataset


def test_configs_load_the_plugin_through_custom_imports():
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs/_base_/default_runtime.py')
    )
    assert cfg.custom_imports.imports == ['mixreorg_mmseg']
    assert cfg.default_scope == 'mmseg'


# a full-size (ViT-S) model takes over a second to build and initialise on
# a CPU: those builds run with the slow tests, while the fast suite builds
# the two ViT-S models once in
# test_full_size_model_has_the_official_parameter_counts
BUILDS = [
    pytest.param(c, marks=pytest.mark.slow) if 'vit-s' in c else c
    for c in CONFIGS
]


@pytest.mark.parametrize(
    'config', BUILDS, ids=[osp.relpath(c, REPO_ROOT) for c in CONFIGS]
)
def test_every_config_builds_its_model(config):
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules()
    cfg = Config.fromfile(config)
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0


def _base_hops(config: str) -> int:
    """The longest chain of ``_base_`` files above ``config``."""
    bases = Config._get_base_files(config)
    here = osp.dirname(config)
    return max(
        (1 + _base_hops(osp.normpath(osp.join(here, b))) for b in bases),
        default=0,
    )


@pytest.mark.parametrize(
    'config', CONFIGS, ids=[osp.relpath(c, REPO_ROOT) for c in CONFIGS]
)
def test_every_config_is_at_most_two_base_hops_deep(config):
    # leaf -> base (-> base), as MMSeg's configs: every setting is at most
    # two inheritance steps from the file a user runs
    assert _base_hops(config) <= 2


def test_version_is_exposed():
    assert (
        mixreorg_mmseg.__version__
        == importlib.import_module('mixreorg_mmseg.version').__version__
    )
    assert 'mixreorg_mmseg' in sys.modules
