"""The house rule: `triage` never imports `chatsvc` (the gateway calls the engine, never back)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_triage_never_imports_chatsvc() -> None:
    sources = sorted((ROOT / "triage").rglob("*.py"))
    assert sources, "no triage sources found"
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            m for m in _imported_modules(path) if m.split(".")[0] == "chatsvc"
        )
        for path in sources
    }
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_the_import_walker_sees_imports() -> None:
    # Guards the test above against passing because it reads nothing.
    assert "chatsvc.config" in _imported_modules(ROOT / "chatsvc" / "cli.py")
