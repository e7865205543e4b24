"""The import graph of medcl (bench/code_shape.py reads it from the source): no circles, no
private names used across modules, and no layer importing one above it."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Layers, lowest first: a module may import its own layer and those below, never one above.
LAYERS = [
    ("medcl._version", "medcl.errors", "medcl.files", "medcl.progress", "medcl.device", "medcl.config",
     "medcl._extension", "medcl.dist", "medcl.registry"),
    ("medcl.ops",),
    ("medcl.io",),
    ("medcl.data", "medcl.losses", "medcl.models", "medcl.demo"),
    ("medcl.methods",),
    ("medcl.train",),
    ("medcl.pretrain", "medcl.downstream", "medcl.embed", "medcl.finetune", "medcl.prepare", "medcl.preview",
     "medcl.manifest", "medcl.compare", "medcl.demo_summary"),
    ("medcl.cli",),
]


def _shape():
    spec = importlib.util.spec_from_file_location("code_shape", ROOT / "bench" / "code_shape.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mods = module.sources(ROOT)
    graph, private = module.imports(mods)
    return module, mods, graph, private


def _layer(mod: str) -> int | None:
    best = None
    for rank, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (mod == p or mod.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (rank, len(p))
    return None if best is None else best[0]


@pytest.fixture(scope="module")
def shape():
    if not (ROOT / "bench" / "code_shape.py").is_file() or not (ROOT / "medcl").is_dir():
        pytest.skip("needs the source tree")
    return _shape()


def test_no_import_circles(shape):
    module, _, graph, _ = shape
    assert module.circles(graph) == []


def test_no_private_names_across_modules(shape):
    _, _, _, private = shape
    assert private == []


def test_every_module_has_a_layer_and_imports_none_above(shape):
    _, mods, graph, _ = shape
    assert [m for m in mods if m != "medcl" and _layer(m) is None] == []
    upward = [f"{a} → {b}" for a, targets in graph.items() for b in targets
              if a != "medcl" and b != "medcl" and _layer(b) > _layer(a)]
    assert upward == []


def test_the_checks_see_a_circle_and_an_upward_import(tmp_path):
    """The graph reader itself: a planted circle and an upward import are found."""
    module, *_ = _shape()
    for name, text in {"medcl/__init__.py": "", "medcl/ops/__init__.py": "", "medcl/ops/a.py": "from medcl.train import b\n",
                       "medcl/train/__init__.py": "", "medcl/train/b.py": "def f():\n    from medcl.ops import a\n",
                       "cli/__init__.py": ""}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    mods = module.sources(tmp_path)
    graph, _ = module.imports(mods)
    assert module.circles(graph) == [["medcl.ops.a", "medcl.train.b"]]
    assert _layer("medcl.ops.a") < _layer("medcl.train.b")
