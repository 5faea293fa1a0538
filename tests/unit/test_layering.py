"""The layering, read from the source: arrows point down (nothing below an edge imports an
edge), the store imports only itself and a few kernel modules, and writes no query with
`text()` (`hub.store`'s docstring)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import deliverers
import hub
import hub.store

HUB = Path(hub.__file__).parent
STORE = Path(hub.store.__file__).parent
MODULES = sorted(STORE.glob("*.py"))
#: `models` is the schema: its DDL uses `text()` for index expressions and server defaults.
QUERY_MODULES = [p for p in MODULES if p.name != "models.py"]
#: What the store may import of this project; libraries are free.
ALLOWED = ("hub.store", "hub.crypto", "hub.ids", "hub.errors", "hub.settings")
PROJECT = ("hub", "deliverers", "tests", "bench")


def imported(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module == "hub":  # `from hub import crypto`
                names += [f"hub.{alias.name}" for alias in node.names]
            else:
                names.append(node.module)
    return names


def allowed(name: str) -> bool:
    if name.split(".")[0] not in PROJECT:
        return True
    return any(name == a or name.startswith(a + ".") for a in ALLOWED)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_a_store_module_imports_only_the_store_the_few_kernel_modules_and_libraries(
    path: Path,
) -> None:
    found = [name for name in imported(ast.parse(path.read_text())) if not allowed(name)]
    assert found == [], f"{path.name} imports {found}"


@pytest.mark.parametrize(
    "path", [p for p in MODULES if p.name != "models.py"], ids=lambda p: p.name
)
def test_a_store_module_writes_no_query_with_text(path: Path) -> None:
    tree = ast.parse(path.read_text())
    calls = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name | ast.Attribute)
        and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) == "text"
    ]
    assert calls == [], f"{path.name} calls text() on lines {calls}"


def test_the_rules_catch_what_they_forbid() -> None:
    assert not allowed("deliverers.config")
    assert not allowed("hub.api.schemas")
    assert not allowed("hub.services.events")
    assert all(allowed(name) for name in ("hub.store.models", "hub.crypto", "sqlalchemy"))
    tree = ast.parse("from deliverers.config import X\nfrom hub import api, crypto\n")
    assert [n for n in imported(tree) if not allowed(n)] == ["deliverers.config", "hub.api"]


#: The edges: the HTTP API, the console, the AMQP consumer, the command line and what runs them.
EDGES = ("hub.api", "hub.web", "hub.console", "hub.ingest", "hub.cli", "hub.runner")
#: What lies below the edges, by folder.
BELOW = [HUB / "services", HUB / "store", HUB / "dispatch", Path(deliverers.__file__).parent]


def _below_the_edges() -> list[Path]:
    return sorted(p for folder in BELOW for p in folder.rglob("*.py"))


def _edge(name: str) -> str | None:
    return next((e for e in EDGES if name == e or name.startswith(e + ".")), None)


@pytest.mark.parametrize("path", _below_the_edges(), ids=lambda p: str(p.relative_to(HUB.parent)))
def test_nothing_below_an_edge_imports_an_edge(path: Path) -> None:
    found = [name for name in imported(ast.parse(path.read_text())) if _edge(name)]
    assert found == [], f"{path.relative_to(HUB.parent)} imports {found}"


@pytest.mark.parametrize("edge", ["console", "ingest"])
def test_an_edge_imports_no_other_edge(edge: str) -> None:
    for path in sorted((HUB / edge).rglob("*.py")):
        own = f"hub.{edge}"
        found = [
            name for name in imported(ast.parse(path.read_text())) if _edge(name) not in (None, own)
        ]
        assert found == [], f"{path.relative_to(HUB.parent)} imports {found}"


def test_the_edge_rule_catches_what_it_forbids() -> None:
    tree = ast.parse("from hub.api.schemas import X\nfrom hub import web\nimport hub.services\n")
    assert [n for n in imported(tree) if _edge(n)] == ["hub.api.schemas", "hub.web"]
