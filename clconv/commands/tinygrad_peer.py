"""tinygrad as a peer of `clconv bench-model`: tinygrad's own ONNX runner
(tinygrad.nn.onnx.OnnxRunner), captured by its JIT (TinyJit), on its OpenCL backend
(DEV=CL, unless DEV is set), which runs on the same OpenCL device as clconv by default:
POCL on the CPU. tinygrad compiles every kernel on its first runs (tens of seconds for
a 224x224 model); its JIT captures the graph on the second call."""
from __future__ import annotations

import importlib.util
import os


def unavailable() -> str | None:
    """Why tinygrad cannot be measured here, or None."""
    if importlib.util.find_spec("tinygrad") is None:
        return "tinygrad not installed (pip install tinygrad)"
    os.environ.setdefault("DEV", "CL")
    try:
        from tinygrad import Device
        from tinygrad.nn.onnx import OnnxRunner  # noqa: F401 - tinygrad >= 0.11 has it

        Device[Device.DEFAULT]
    except ImportError as error:
        return f"this tinygrad has no ONNX runner ({error})"
    except Exception as error:  # tinygrad raises plain exceptions for a missing backend
        return f"tinygrad DEV={os.environ['DEV']} unusable: {error}"
    return None


class TinygradModel:
    """`run(feeds)` returns graph output `output` as a numpy array."""

    def __init__(self, path: str, output: str):
        from tinygrad import Device, TinyJit
        from tinygrad.nn.onnx import OnnxRunner

        runner = OnnxRunner(path)
        self.device = Device.DEFAULT
        self._jit = TinyJit(lambda **inputs: runner(inputs)[output].realize())

    def run(self, feeds):
        from tinygrad import Tensor

        return self._jit(**{name: Tensor(value) for name, value in feeds.items()}).numpy()


def load(proto, output: str, workdir: str) -> TinygradModel:
    """`proto` (an onnx.ModelProto) saved in `workdir` and read by tinygrad. Raises
    RuntimeError with tinygrad's message when it cannot read or run the model."""
    import onnx

    path = os.path.join(workdir, "tinygrad.onnx")
    onnx.save(proto, path)
    try:
        return TinygradModel(path, output)
    except Exception as error:  # an op tinygrad lacks, a parse error: its own types
        raise RuntimeError(f"tinygrad cannot load the model: {error}") from None
