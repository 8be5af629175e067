"""Ops called from 8 threads at once give what they give called from one: kernel objects,
memo dicts and the shared queue must not mix one call's arguments into another's."""
import threading

import numpy as np
import pytest

import clconv
import clconv.functional as F

THREADS = 8
ROUNDS = 20  # here 4 rounds once passed without the launch lock; 20 failed 4 runs of 4


def _work(seed):
    """Arrays for one thread; shapes differ by seed so launches of different sizes mix."""
    rng = np.random.default_rng(seed)
    n, c, k, size = 1 + seed % 2, 3 + seed % 3, 4 + seed % 4, 9 + seed
    r = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return dict(x=r(n, c, size, size), w=r(k, c, 3, 3), b=r(k), g=r(n, k, size, size),
                a=r(5 + seed, 16), lw=r(7, 16))


def _ops(d):
    """Every result as numpy: conv2d forward and backward, pooling and its gradient,
    linear and its gradient."""
    out = {"conv": F.conv2d(d["x"], d["w"], d["b"], padding=1)}
    gi, gw, gb = F.conv2d_backward(d["g"], d["x"], d["w"], padding=1)
    out.update(conv_gi=gi, conv_gw=gw, conv_gb=gb)
    pooled, indices = F.max_pool2d(d["x"], 2, return_indices=True)
    out.update(max_pool=pooled, avg_pool=F.avg_pool2d(d["x"], 3, stride=2, padding=1))
    out["max_pool_grad"] = F.max_pool2d_backward(pooled, indices, d["x"].shape, 2)
    out["linear"] = F.linear(d["a"], d["lw"])
    lg = np.ones((d["a"].shape[0], 7), np.float32)
    out["linear_gi"], out["linear_gw"], _ = F.linear_backward(lg, d["a"], d["lw"])
    return {name: clconv.to_numpy(v) for name, v in out.items()}


@pytest.fixture
def frequent_switches():
    """Switch threads every microsecond instead of every 5 ms, so a race between setting
    a kernel's arguments and enqueueing it shows up within a few rounds."""
    import sys

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def test_ops_from_8_threads_match_one_thread(frequent_switches):
    data = [_work(seed) for seed in range(THREADS)]
    expected = [_ops(d) for d in data]  # one thread, also builds every kernel first
    barrier = threading.Barrier(THREADS)
    results, errors = [[] for _ in range(THREADS)], []

    def worker(i):
        try:
            barrier.wait(timeout=60)
            for _ in range(ROUNDS):
                results[i].append(_ops(data[i]))
        except Exception as error:  # reported below with the thread's index
            errors.append((i, repr(error)))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    for i in range(THREADS):
        for round_ in results[i]:
            for name, value in expected[i].items():
                np.testing.assert_array_equal(round_[name], value,
                                              err_msg=f"thread {i}: {name}")


def test_a_fresh_kernel_built_by_8_threads_at_once_is_built_once(monkeypatch):
    """First use from many threads: one build, one kernel object, same results."""
    from clconv import build

    builds = []
    real_build = build._build
    monkeypatch.setattr(build, "_build", lambda *a: builds.append(a) or real_build(*a))
    rt = clconv.runtime.current()
    defines = {"CLCONV_TEST_THREADS_UNUSED": 12345}  # a new option set: a fresh build
    barrier = threading.Barrier(THREADS)
    kernels = [None] * THREADS
    errors = []

    def worker(i):
        barrier.wait(timeout=60)
        try:
            kernels[i] = build.get_kernel(rt, "activation.cl", "relu_backward", defines)
        except Exception as error:  # a thread's exception must fail the test
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert len(builds) == 1
    assert kernels[0] is not None and all(k is kernels[0] for k in kernels)
