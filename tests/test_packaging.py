"""The kernels ship with the package: found from a source checkout or editable install,
and from a normal wheel install."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import clconv
from clconv.build import kernel_dir

REPO = Path(__file__).resolve().parent.parent


def test_kernels_found_from_the_imported_package():
    found = kernel_dir()
    assert (found / "conv2d.cl").is_file()
    package = Path(clconv.__file__).resolve().parent
    if package.parent == REPO:  # source checkout or editable install
        assert found == REPO / "kernels_cl"
    else:
        assert found == package / "kernels_cl"


@pytest.mark.slow
def test_wheel_install_contains_and_finds_the_kernels(tmp_path):
    for module in ("pip", "setuptools"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed: cannot build a wheel here")
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(wheels), str(REPO)], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("clconv-*.whl")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target),
         str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr
    for pattern in ("*.cl", "*.h"):  # sources and the headers they include
        shipped = sorted(p.name for p in (target / "clconv" / "kernels_cl").glob(pattern))
        assert shipped == sorted(p.name for p in (REPO / "kernels_cl").glob(pattern))
    assert (target / "clconv" / "tuning_defaults.json").is_file()
    assert (target / "clconv" / "algos" / "gemm.py").is_file()
    # Import the installed copy (not the checkout) and ask where its kernels are.
    probe = ("import clconv, clconv.build; print(clconv.__file__); "
             "print(clconv.build.kernel_dir())")
    # the installed copy first; a PYTHONPATH already set may hold clconv's dependencies
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(target)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    module_file, found = result.stdout.split()
    assert Path(module_file).is_relative_to(target)
    assert Path(found) == target / "clconv" / "kernels_cl"
