"""Imports point one way: cli -> batch -> pipeline -> engine -> model / audio / core.

Every import between nmfsep's modules is read from the source (function-level imports too, so a
cycle cannot hide inside a function) and must point to a lower layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nmfsep

PACKAGE = Path(nmfsep.__file__).parent

#: Layer of each module: a module may import only modules of lower layers.
LAYERS: dict[str, int] = {
    "errors": 0,
    "defaults": 0,
    "validation": 1,
    "limits": 1,
    "options": 2,
    "spectral": 2,
    "frames": 2,
    "masks": 2,
    "tracking": 3,  # noise tracker and decision-directed gain (its loops in _kernels)
    "hpss": 2,  # harmonic/percussive prior: median-filter HPSS, mask tilt (errors only)
    "refine": 3,  # the learned mask refiner: features (frames' stacking), MLP forward, mask blend
    "phase": 3,  # MISI phase reconstruction (spectral only)
    "_kernels": 2,
    "nmf": 3,
    "audio": 3,
    "pipes": 3,  # stdin/stdout/ffmpeg streams (errors only)
    "metrics": 3,
    "clustering": 3,
    "bayes": 4,  # variational Bayesian NMF: starts from nmf's NNDSVDa point
    "model": 4,  # saves through audio's safe write path
    "engine": 5,
    "plotting": 5,
    "training": 6,
    "unsupervised": 6,
    "blend": 4,  # the cluster blend: per-block NMF on bands, guided grouping (nmf, clustering)
    "stationary": 4,  # the stationary-noise expert: short-window DD-Wiener and its gate (tracking)
    "separation": 7,
    "streaming": 7,
    "evaluation": 7,
    "inputs": 7,
    "batch": 8,
    "cli": 9,
    "__main__": 10,
}


def _imports(path: Path) -> set[str]:
    """nmfsep modules imported anywhere in a file (``nmfsep`` itself, for __version__, aside)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "nmfsep":
                found.update(a.name for a in node.names if (PACKAGE / f"{a.name}.py").exists())
            elif node.module.startswith("nmfsep."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("nmfsep."):
                    found.add(alias.name.split(".")[1])
    return found


def test_every_module_has_a_layer() -> None:
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert modules == set(LAYERS), "add new modules to LAYERS (and say why there)"


def test_imports_point_down() -> None:
    wrong = []
    for name, layer in LAYERS.items():
        for target in _imports(PACKAGE / f"{name}.py"):
            if LAYERS[target] >= layer:
                wrong.append(f"{name} (layer {layer}) imports {target} (layer {LAYERS[target]})")
    assert not wrong, "\n".join(wrong)


def test_no_cycle() -> None:
    graph = {name: _imports(PACKAGE / f"{name}.py") for name in LAYERS}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])
