"""Test setup: poison new outputs with NaN so unwritten elements show, and report the
device and any imposed limits (CLCONV_LIMITS=videocore4 runs the suite in the
"VideoCore IV profile": work-groups capped at 12 and the other Pi limits)."""
import os

import numpy as np
import pytest

os.environ.setdefault("CLCONV_POISON_OUTPUTS", "1")


def pytest_report_header(config):
    try:
        import clconv

        rt = clconv.current_runtime()
    except Exception as error:  # the device tests report this properly; keep the header
        return f"clconv device: none ({error})"
    p = rt.profile
    limits = f", limits imitate {p.limits_name}" if p.limits_name else ""
    return (f"clconv device: {p.label} (driver {p.driver_version}); max work-group size "
            f"{p.max_work_group_size}{limits}")


def pytest_runtest_logstart(nodeid, location):
    """With CLCONV_TEST_TRACE=FILE, append each test's id to FILE as it starts, so a
    run that dies (a crash in a driver, the OOM killer, a time limit) says in which
    test: CI prints the last line."""
    path = os.environ.get("CLCONV_TEST_TRACE")
    if path:
        try:
            with open(path, "a") as trace:
                trace.write(nodeid + "\n")
        except OSError:  # a trace is a diagnostic: never a reason for the run to fail
            pass


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def torch():
    """torch, the second oracle; tests that use it skip with the reason when it is absent."""
    return pytest.importorskip("torch", reason="torch not installed: pip install torch==2.13.0")


def pytest_collection_modifyitems(config, items):
    """The ONNX backend runner generates a test for every node test it knows and skips
    the ones outside our include list; deselect those, so that the skips reported are
    only the excluded cases of the ops we cover, each with its reason."""
    outside, kept = [], []
    for item in items:
        runner = getattr(getattr(item, "module", None), "backend_test", None)
        patterns = getattr(runner, "_include_patterns", None)
        name = getattr(item, "originalname", None) or item.name
        if patterns and not any(p.search(name) for p in patterns):
            outside.append(item)
        else:
            kept.append(item)
    if outside:
        config.hook.pytest_deselected(items=outside)
        items[:] = kept
