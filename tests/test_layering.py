"""The layers of the package: every import points down the data flow, never up.

Each top-level module or package of ``src/transmri`` has a layer; a module
may import its own layer and the ones below, never one above. Every import
counts: module-level, inside functions, under ``TYPE_CHECKING`` and
``importlib.import_module("transmri....")`` with a literal name (an import
hidden in a function still makes a cycle, it only hides it). Issue 18 found
``training`` and ``evaluation`` importing each other through 21 function-level
imports; the transfer benchmark, which trains Learners, now sits above both.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "transmri"

#: Low to high. Why each sits where it does:
LAYERS: tuple[tuple[str, ...], ...] = (
    # helpers every stage uses; they import nothing of the stages
    ("errors", "_version", "_validation", "_files", "_allocator"),
    ("data",),  # scan tables, preprocessing, cache, splits, loaders
    ("datasets",),  # adapters that build ScanTables (BIDS, ADNI, IXI, synthetic)
    ("models",),  # networks; know nothing of files or training
    ("evaluation",),  # metrics, figures, reports: read predictions and run folders
    ("training",),  # the Learner; calls evaluation for its metrics and figures
    # imports external checkpoints into the encoder format of training/encoder_io
    ("pretrained",),
    # raw-scan steps; brain extraction runs the deepbet network of pretrained
    ("raw",),
    ("transfer",),  # the transfer benchmark: trains Learners, scores them with evaluation
    ("experiment",),  # an experiment file run end to end (pretrain, finetune, compare)
    ("demo",),  # a synthetic experiment
    ("cli", "__main__"),  # the command line
)


def _layer_of() -> dict[str, int]:
    return {name: i for i, names in enumerate(LAYERS) for name in names}


def _top(module: str) -> str | None:
    """The top-level part of a ``transmri.<top>...`` name; ``""`` for ``transmri`` itself."""
    if module == "transmri":
        return ""
    if module.startswith("transmri."):
        return module.split(".")[1]
    return None


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of a ``transmri`` module in ``tree``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "transmri":  # from transmri import _files: the submodules
                found += [(node.lineno, f"transmri.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (getattr(node.func, "attr", None) or getattr(node.func, "id", None))
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return [(line, name) for line, name in found if _top(name) is not None]


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        out.append((parts[0], path))
    return out


def test_every_module_has_a_layer() -> None:
    layer = _layer_of()
    tops = {top for top, _ in _modules()} - {"__init__"}
    assert sorted(tops - set(layer)) == [], "give each new package a layer in LAYERS"
    assert sorted(set(layer) - tops) == [], "LAYERS names a package that is gone"


def test_imports_point_down_the_layers() -> None:
    layer = _layer_of()
    upward = []
    for top, path in _modules():
        if top == "__init__":
            continue  # the package facade: lazy names of every layer (PEP 562)
        here = layer[top]
        for line, name in _imports(ast.parse(path.read_text("utf-8"), str(path))):
            target = _top(name)
            if target == "":
                upward.append(f"{path.relative_to(SRC)}:{line}: imports the facade 'transmri'")
            elif target is not None and layer.get(target, here) > here:
                upward.append(f"{path.relative_to(SRC)}:{line}: {top} imports {name}")
    assert upward == []


def test_the_old_training_evaluation_cycle_is_gone() -> None:
    for path in sorted((SRC / "evaluation").rglob("*.py")):
        names = [name for _, name in _imports(ast.parse(path.read_text("utf-8")))]
        assert not [n for n in names if _top(n) in ("training", "transfer")], path


def test_the_checker_sees_function_level_and_importlib_imports() -> None:
    tree = ast.parse(
        "def f():\n    from transmri.training import Learner\n"
        "import importlib\nimportlib.import_module('transmri.cli')\n"
        "from transmri import _files\n"
    )
    assert sorted(_imports(tree)) == [
        (2, "transmri.training"),
        (4, "transmri.cli"),
        (5, "transmri._files"),
    ]
