"""The store's own rules (`hub.store`'s docstring), read from its source: what it may import, and
no `text()` in its queries."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hub.store

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
