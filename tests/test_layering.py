"""The package's layers, read from the source with ``ast`` (nothing is
imported, so a lazy import inside a function counts as much as one at the
top of a file).

From the bottom up (docs/contributing.md, "Layers"):

1. ``utils``: helpers without a registry (and ``version``);
2. ``datasets`` and ``models``: side by side, neither imports the other;
3. ``engine``: hooks and wrappers that tie data and models to the Runner;
4. ``apis``: one-image inference;
5. ``cli``: what the scripts under ``tools/`` share;
6. the package's ``__init__``, which imports everything so that it
   registers.

A module imports its own layer or the layers below it, never one above or
beside it, and never another module's private (``_name``) helper, ours or a
third party's.
"""

from __future__ import annotations

import ast
import os.path as osp
from dataclasses import dataclass
from pathlib import Path

from .conftest import REPO_ROOT

PACKAGE = 'mixreorg_mmseg'

#: the package's parts (first name under ``mixreorg_mmseg``), bottom first;
#: parts that share a row are side by side and must not import each other
LAYERS = (
    ('utils', 'version'),
    ('datasets', 'models'),
    ('engine',),
    ('apis',),
    ('cli',),
    ('',),  # mixreorg_mmseg/__init__.py
)
RANK = {part: rank for rank, row in enumerate(LAYERS) for part in row}


@dataclass(frozen=True)
class Import:
    """One import statement of a package module, its target resolved."""

    path: str  # file, relative to the repository
    line: int
    text: str  # the statement as written
    source: str  # importing module, dotted
    target: str  # imported module, dotted
    names: tuple[str, ...]  # names taken from it (``from X import a, b``)
    in_function: bool

    def __str__(self) -> str:
        return f'{self.path}:{self.line}: {self.text}'


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def _is_module(dotted: str) -> bool:
    base = osp.join(REPO_ROOT, *dotted.split('.'))
    return osp.isfile(base + '.py') or osp.isfile(
        osp.join(base, '__init__.py')
    )


def _is_private(name: str) -> bool:
    return name.startswith('_') and not (
        name.startswith('__') and name.endswith('__')
    )


def _ours(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + '.')


def _part(module: str) -> str:
    """``mixreorg_mmseg.models.losses.x`` -> ``models``; the package
    itself -> ``''``."""
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else ''


def _targets(node: ast.ImportFrom, package: str) -> list[tuple]:
    """What ``from X import a, b`` (in a module of ``package``) imports:
    ``(module, names taken from it)`` pairs; a name that is one of our
    modules is a target of its own."""
    module = node.module or ''
    if node.level:
        base = package.split('.')[: len(package.split('.')) - node.level + 1]
        module = '.'.join(base + ([module] if module else []))
    names = [alias.name for alias in node.names]
    submodules = [
        name
        for name in names
        if _ours(module) and _is_module(f'{module}.{name}')
    ]
    taken = tuple(name for name in names if name not in submodules)
    return [(f'{module}.{name}', ()) for name in submodules] + (
        [(module, taken)] if taken else []
    )


def _imports_of(path: Path) -> list[Import]:
    """Every import statement of ``path``, at any depth."""
    source = _module_name(path)
    package = (
        source if path.name == '__init__.py' else source.rpartition('.')[0]
    )
    rel = str(path.relative_to(REPO_ROOT))
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                pairs = [(alias.name, ()) for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                pairs = _targets(child, package)
            else:
                pairs = []
            for target, names in pairs:
                found.append(
                    Import(
                        rel,
                        child.lineno,
                        ast.unparse(child),
                        source,
                        target,
                        names,
                        in_function,
                    )
                )
            visit(
                child,
                in_function
                or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)),
            )

    visit(ast.parse(path.read_text(encoding='utf-8'), rel), False)
    return found


def _package_imports() -> list[Import]:
    files = sorted(Path(REPO_ROOT, PACKAGE).rglob('*.py'))
    assert len(files) > 20, f'no package found under {REPO_ROOT}'
    return [imp for path in files for imp in _imports_of(path)]


IMPORTS = _package_imports()


def test_every_part_of_the_package_has_a_layer():
    parts = {_part(imp.source) for imp in IMPORTS}
    parts |= {_part(imp.target) for imp in IMPORTS if _ours(imp.target)}
    assert parts - set(RANK) == set(), (
        'give these parts of the package a row in LAYERS (and in '
        'docs/contributing.md): ' + ', '.join(sorted(parts - set(RANK)))
    )


def test_no_module_imports_a_layer_above_or_beside_its_own():
    wrong = []
    for imp in IMPORTS:
        if not _ours(imp.target):
            continue
        source, target = _part(imp.source), _part(imp.target)
        if source != target and RANK[target] >= RANK[source]:
            where = 'above' if RANK[target] > RANK[source] else 'beside'
            wrong.append(
                f'{imp}  ({source or PACKAGE} imports {target or PACKAGE}, '
                f'a layer {where} its own)'
            )
    assert not wrong, 'imports against the layers:\n' + '\n'.join(wrong)


def test_no_module_imports_another_modules_private_name():
    wrong = []
    for imp in IMPORTS:
        private = [n for n in imp.names if _is_private(n)]
        private += [
            part for part in imp.target.split('.') if _is_private(part)
        ]
        # a package's __init__ may hand on its own modules' names
        if imp.path.endswith('__init__.py') and imp.target.startswith(
            imp.source + '.'
        ):
            continue
        if private:
            wrong.append(f'{imp}  (private: {", ".join(private)})')
    assert not wrong, (
        'private names imported from another module (make the helper '
        'public, with a docstring, or move it where it is used):\n'
        + '\n'.join(wrong)
    )


def test_package_modules_import_each_other_without_a_cycle():
    graph: dict[str, set[str]] = {}
    where: dict[tuple[str, str], Import] = {}
    for imp in IMPORTS:
        if _ours(imp.target) and imp.target != imp.source:
            graph.setdefault(imp.source, set()).add(imp.target)
            where.setdefault((imp.source, imp.target), imp)
    done: set[str] = set()
    stack: list[str] = []

    def cycle_from(module):
        if module in stack:
            loop = stack[stack.index(module) :] + [module]
            return [
                str(where[a, b]) for a, b in zip(loop, loop[1:], strict=False)
            ]
        if module in done:
            return None
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            loop = cycle_from(target)
            if loop:
                return loop
        stack.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        loop = cycle_from(module)
        assert not loop, 'modules that import each other:\n' + '\n'.join(loop)


def test_utils_imports_mmseg_only_inside_functions():
    # the mmcv-lite stand-in (utils.mmcv_lite_compat) must be in place
    # before MMSeg's first import, and ``import mixreorg_mmseg`` reaches
    # every module of utils while installing it
    wrong = [
        str(imp)
        for imp in IMPORTS
        if _part(imp.source) == 'utils'
        and not imp.in_function
        and imp.target.split('.')[0] == 'mmseg'
    ]
    assert not wrong, 'utils imports mmseg at module level:\n' + '\n'.join(
        wrong
    )
