"""The library never imports the embedded world (``repic.world``): walked over every module's imports.

Both absolute (``repic.world...``) and relative imports (``from ..world import``) count, at any depth in
the file (imports inside functions too), so a lazy import cannot slip past.
"""

from __future__ import annotations

import ast
from pathlib import Path

import repic

PACKAGE_ROOT = Path(repic.__file__).resolve().parent
WORLD = "repic.world"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every module the source of ``module`` imports, relative imports resolved against its own package."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                target = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)  # "from . import world"
    return names


def library_files() -> list[Path]:
    world = PACKAGE_ROOT / "world"
    return [path for path in PACKAGE_ROOT.rglob("*.py") if world not in path.parents]


def _world_imports(names: set[str]) -> list[str]:
    return sorted(name for name in names if name == WORLD or name.startswith(WORLD + "."))


def test_no_library_module_imports_the_world():
    offenders = {}
    for path in library_files():
        names = imported_modules(path.read_text(encoding="utf-8"), _module_name(path), is_package=path.name == "__init__.py")
        if _world_imports(names):
            offenders[_module_name(path)] = _world_imports(names)
    assert offenders == {}
    assert len(library_files()) > 50  # the walk found the library


def test_the_walker_sees_relative_absolute_and_lazy_imports():
    source = "def f():\n    from ..world.tiny import build_tiny_model\n    import repic.world.probe\nfrom .. import world\n"
    assert _world_imports(imported_modules(source, "repic.train.session")) == [
        "repic.world", "repic.world.probe", "repic.world.tiny", "repic.world.tiny.build_tiny_model",
    ]
    assert _world_imports(imported_modules("from ..models import load\n", "repic.train.session")) == []
