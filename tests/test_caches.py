"""clconv.clear_caches() empties every in-memory cache, and every module-level memo in
clconv is registered with it."""
import ast
import re
from pathlib import Path

import numpy as np

import clconv
import clconv.algos.depthwise_direct  # noqa: F401 (registers its kernel memo)
import clconv.functional as F
from clconv import caches, tuning

PACKAGE = Path(clconv.__file__).resolve().parent
EXPECTED = {"build.programs", "build.kernels", "build.launch_shapes", "build.kernel_limits",
            "build.typed", "depthwise_direct.kernels", "algos.choices", "geometry.conv",
            "arrays.layouts", "validation.layouts", "tuning.databases",
            "tuning.shipped_defaults"}


def test_clear_caches_empties_every_cache(rng):
    x = rng.standard_normal((1, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    clconv.to_numpy(F.max_pool2d(F.conv2d(x, w, padding=1), 2))
    tuning.load(clconv.current_runtime().profile)
    tuning.shipped_defaults()
    assert EXPECTED <= set(caches.sizes())
    filled = {name for name, size in caches.sizes().items() if size}
    assert {"build.programs", "build.kernels", "algos.choices", "geometry.conv",
            "tuning.databases", "tuning.shipped_defaults"} <= filled
    clconv.clear_caches()
    assert not any(caches.sizes().values()), caches.sizes()
    # and everything refills: the op still runs and agrees with itself
    again = clconv.to_numpy(F.conv2d(x, w, padding=1))
    assert np.isfinite(again).all() and caches.sizes()["build.programs"]


def _module_level_memos(path: Path):
    """Names bound at module level to an empty dict/set, and lru_cache'd functions."""
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            value = node.value
            empty = (isinstance(value, ast.Dict) and not value.keys) or (
                isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                and value.func.id in ("dict", "set") and not value.args)
            if empty:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                yield from (t.id for t in targets if isinstance(t, ast.Name))
        if isinstance(node, ast.FunctionDef) and any(
                "cache" in ast.unparse(d) for d in node.decorator_list):
            if not re.search(rf'caches\.register\("[\w.]+", {node.name}\)', source):
                yield node.name


def test_every_module_level_memo_is_registered():
    unregistered = [f"{path.relative_to(PACKAGE)}:{name}" for path in PACKAGE.rglob("*.py")
                    if path.name != "caches.py"  # the registry itself
                    for name in _module_level_memos(path)]
    assert not unregistered, ("module-level caches that clear_caches() cannot see (use "
                              "caches.memo or caches.register): " + ", ".join(unregistered))
