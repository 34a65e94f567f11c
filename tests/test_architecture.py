"""The package's layering: no import cycle, every package placed in a layer of the contract.

`lint-imports` (run by CI, `.ci/run`) checks that no layer imports a layer above it. These tests
check what that contract cannot: that the contract covers every package (a new top-level package
left out of it would be unchecked) and that no two modules import each other through any chain,
within a layer as well as across layers.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    # Imports under `if TYPE_CHECKING:` count too: a reader follows them like any other.
    return grimp.build_graph("gato")


def _contract_layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layered = [c for c in config["contracts"] if c["type"] == "layers"]
    assert len(layered) == 1, "expected one layers contract in pyproject.toml"
    names = []
    for layer in layered[0]["layers"]:
        names += [name.strip().strip("()") for name in layer.split("|")]
    return names


def test_every_package_is_in_a_layer(graph):
    children = {m for m in graph.find_children("gato") if m != "gato.__main__"}
    layers = set(_contract_layers())
    assert children - layers == set(), "packages outside the layers contract (pyproject.toml)"
    assert layers - children == set(), "layers that name no module of gato"


def _cycle(graph: grimp.ImportGraph, module: str) -> list[str] | None:
    for imported in sorted(graph.find_modules_directly_imported_by(module)):
        if not imported.startswith("gato."):
            continue
        chain = graph.find_shortest_chain(importer=imported, imported=module)
        if chain:
            return [module, *chain]
    return None


def test_no_import_cycles(graph):
    cycles = {}
    for module in sorted(graph.modules):
        if module.startswith("gato.") and (chain := _cycle(graph, module)):
            cycles[module] = " -> ".join(chain)
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles.values())))


def test_cycle_detection_finds_a_planted_cycle(graph):
    # The check above must be able to fail: plant an upward import and look for it.
    planted = grimp.build_graph("gato")
    planted.add_import(importer="gato.vocab", imported="gato.modeling.model")
    assert _cycle(planted, "gato.vocab") is not None
