"""ncnn as a peer of `clconv bench-model`: the ONNX model converted by pnnx (PyPI `pnnx`,
which ships the converter binary) and run by ncnn's Python binding (PyPI `ncnn`).

ncnn's tensors carry no batch dim, so a batch runs as one extraction per image. ncnn
reads its files without checking them and crashes the interpreter on a missing one, so
every file is checked before it is handed over."""
from __future__ import annotations

import importlib.util
import os
import subprocess

CONVERT_TIMEOUT_S = 600
PNNX_MAX_IR_VERSION = 13


def unavailable() -> str | None:
    """Why ncnn cannot be measured here, or None."""
    missing = [name for name in ("ncnn", "pnnx") if importlib.util.find_spec(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (pip install ncnn pnnx)"
    return None


class NcnnModel:
    """A converted model: `run(feeds)` returns the first output with the batch dim."""

    def __init__(self, net, input_name: str, output_name: str, graph_input: str):
        self.net, self.input_name, self.output_name = net, input_name, output_name
        self.graph_input = graph_input

    def run(self, feeds):
        import ncnn
        import numpy as np

        outputs = []
        for image in feeds[self.graph_input]:
            extractor = self.net.create_extractor()
            extractor.input(self.input_name, ncnn.Mat(np.ascontiguousarray(image)))
            status, mat = extractor.extract(self.output_name)
            if status != 0:
                raise RuntimeError(f"ncnn: extracting {self.output_name!r} failed ({status})")
            outputs.append(np.array(mat))
        return np.stack(outputs)


def convert(proto, input_shapes: dict, threads: int, workdir: str) -> NcnnModel:
    """Convert `proto` (an onnx.ModelProto) with pnnx in `workdir` and load it in ncnn.
    Raises RuntimeError, with pnnx's last words, when the conversion fails."""
    import ncnn
    import onnx
    import pnnx

    if len(input_shapes) != 1:
        raise RuntimeError(f"{len(input_shapes)} inputs; only single-input models are run")
    (name, shape), = input_shapes.items()
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    # older model-zoo files list their initializers as graph inputs too; pnnx would take
    # the first of them for the image
    initializers = {t.name for t in model.graph.initializer}
    kept = [i for i in model.graph.input if i.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    # pnnx 20261020 refuses IR versions past 13; the graph is the same at 13
    model.ir_version = min(model.ir_version, PNNX_MAX_IR_VERSION)
    onnx_path = os.path.join(workdir, "model.onnx")
    onnx.save(model, onnx_path)
    param, weights = os.path.join(workdir, "model.param"), os.path.join(workdir, "model.bin")
    dims = ",".join(str(d) for d in (1, *shape[1:]))
    command = [pnnx.EXEC_PATH, onnx_path, f"inputshape=[{dims}]", f"ncnnparam={param}",
               f"ncnnbin={weights}", "fp16=0"]
    for key, suffix in (("pnnxparam", "pnnx.param"), ("pnnxbin", "pnnx.bin"),
                        ("pnnxpy", "pnnx.py"), ("pnnxonnx", "pnnx.onnx"),
                        ("ncnnpy", "ncnn.py")):
        command.append(f"{key}={os.path.join(workdir, suffix)}")
    try:
        done = subprocess.run(command, capture_output=True, text=True,
                              timeout=CONVERT_TIMEOUT_S, cwd=workdir)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RuntimeError(f"pnnx did not run: {error}") from None
    if done.returncode != 0 or not (os.path.isfile(param) and os.path.isfile(weights)):
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"pnnx could not convert the model: {last[0]}")
    net = ncnn.Net()
    net.opt.num_threads = threads
    # float32 throughout, as clconv and ONNX Runtime compute
    net.opt.use_fp16_packed = net.opt.use_fp16_storage = False
    net.opt.use_fp16_arithmetic = net.opt.use_bf16_storage = False
    if net.load_param(param) != 0 or net.load_model(weights) != 0:
        raise RuntimeError("ncnn could not load pnnx's files")
    inputs, outputs = net.input_names(), net.output_names()
    if not inputs or not outputs:
        raise RuntimeError("pnnx's model names no input or output blob")
    return NcnnModel(net, inputs[0], outputs[0], name)
