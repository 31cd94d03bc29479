"""Imports go one way: ground <- frontends <- networks <- export / in-Triton backend / server control <- gateway
and clients; only the CLI composes them all. Read from the import statements of every module (lazy imports
inside functions included), so a violation fails here before it can become a cycle."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Folder -> the package name it installs as (pyproject's package-dir).
PACKAGES = {"gsv_triton": "gsv_triton", "export": "gsv_export", "gateway": "gsv_gateway", "cli": "gsv_cli"}

# Each part and the parts it may import (itself always).
ALLOWED: dict[str, set[str]] = {
    "ground": set(),
    "frontends": {"ground"},
    "networks": {"ground", "frontends"},
    "backend": {"ground", "frontends", "networks"},
    "export": {"ground", "frontends", "networks"},
    "server": {"ground"},
    "client": {"ground", "frontends"},
    "gateway": {"ground", "frontends"},
    "templates": {"backend"},  # model_repository/<model>/1/model.py: entry points only
    "cli": {"ground", "frontends", "networks", "backend", "export", "server", "client", "gateway"},
}
PARTS = (  # prefix -> part, most specific first
    ("gsv_cli", "cli"),
    ("gsv_triton.client", "client"),
    ("gsv_triton.server", "server"),
    ("gsv_triton.backend", "backend"),
    ("gsv_triton.networks", "networks"),
    ("gsv_triton.text", "frontends"),
    ("gsv_triton.audio", "frontends"),
    ("gsv_triton", "ground"),
    ("gsv_export", "export"),
    ("gsv_gateway", "gateway"),
)


def part_of(module: str) -> str | None:
    for prefix, part in PARTS:
        if module == prefix or module.startswith(prefix + "."):
            return part
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = [PACKAGES[rel.parts[0]], *rel.parts[1:]]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``path``; relative imports resolved against ``module``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
    return found


def source_files() -> list[tuple[Path, str, str]]:
    """(path, module, part) of every Python file of the three packages and of the model templates."""
    files = []
    for folder in PACKAGES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            module = module_name(path)
            files.append((path, module, part_of(module)))
    for path in sorted((ROOT / "model_repository").rglob("*.py")):
        files.append((path, "model_repository", "templates"))
    return files


def violations() -> list[str]:
    bad = []
    for path, module, part in source_files():
        for line, target in imported_modules(path, module):
            target_part = part_of(target)
            if target_part is None or target_part == part:
                continue
            if target_part not in ALLOWED[part]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {part} imports {target} ({target_part})")
    return bad


def test_every_module_belongs_to_a_part() -> None:
    assert all(part for _, _, part in source_files())


def test_imports_go_one_way() -> None:
    assert violations() == []


def test_the_rule_catches_a_backward_import(monkeypatch) -> None:
    """The check itself can fail: a ground module importing the gateway is reported."""
    fake = ROOT / "gsv_triton" / "settings.py"
    tree = imported_modules(fake, "gsv_triton.settings") + [(1, "gsv_gateway.app")]
    monkeypatch.setattr(sys.modules[__name__], "imported_modules", lambda path, module: tree if path == fake else [])
    assert violations() == ["gsv_triton/settings.py:1: ground imports gsv_gateway.app (gateway)"]
