"""No import cycles: every clconv module imports alone, first, in a fresh interpreter
state, and no clconv module hides a cycle behind an import inside a function."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "clconv"

# Imports inside functions that may stay: they keep `clconv ...` start-up fast (the
# command modules load numpy, pyopencl or onnx only for the command that runs).
LAZY_ALLOWED = {"clconv/cli.py": "CLI start-up time"} | {
    f"clconv/commands/{p.name}": "CLI start-up time"
    for p in (PACKAGE / "commands").glob("*.py")}


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_module_imports_first():
    """A cycle between two modules shows when the one imported first is the one that
    reads a name from a half-initialised partner, so each module is imported first,
    alone, with every clconv module dropped from sys.modules before it."""
    pytest.importorskip("onnx", reason="clconv.onnx modules need the onnx package")
    script = f"""
import importlib, sys, traceback
failed = []
for name in {_modules()!r}:
    for key in [k for k in sys.modules if k == "clconv" or k.startswith("clconv.")]:
        del sys.modules[key]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc(limit=-2))
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def _function_level_imports(path: Path, root: Path = ROOT) -> list[str]:
    """`import clconv...` / `from . ...` / `from clconv ...` statements inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.ImportFrom) and (
                    node.level > 0 or (node.module or "").split(".")[0] == "clconv"):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
            elif isinstance(node, ast.Import) and any(
                    a.name.split(".")[0] == "clconv" for a in node.names):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_no_function_level_imports_of_clconv():
    offenders = [hit for path in sorted(PACKAGE.rglob("*.py"))
                 if path.relative_to(ROOT).as_posix() not in LAZY_ALLOWED
                 for hit in _function_level_imports(path)]
    assert not offenders, ("imports inside functions (move them to the top, or the shared "
                           "piece to a module both sides can import): " + ", ".join(offenders))


def test_the_static_check_sees_a_function_level_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\n\ndef f():\n    from .ops import conv\n"
                      "    import clconv.tuning\n    import json\n")
    assert _function_level_imports(sample, tmp_path) == ["sample.py:5", "sample.py:6"]
