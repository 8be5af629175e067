"""The ONNX project's own backend test runner drives clconv.onnx.backend over the
node tests of the ops clconv imports."""
import pytest

pytest.importorskip("onnx", reason="onnx not installed: pip install 'clconv[onnx]'")

import onnx.backend.test  # noqa: E402

import clconv.onnx.backend as clconv_backend  # noqa: E402

OPS = ["conv", "basic_conv", "convtranspose", "maxpool", "averagepool", "globalaveragepool",
       "globalmaxpool", "lrn", "relu", "leakyrelu", "sigmoid", "tanh", "clip", "hardsigmoid",
       "hardswish", "batchnorm", "softmax", "gemm", "matmul", "add", "sum", "mul", "sub", "div",
       "concat", "reshape", "flatten", "transpose", "squeeze", "unsqueeze", "identity",
       "dropout", "constant", "constantofshape", "shape", "gather", "constant_pad", "edge_pad",
       "reflect_pad", "wrap_pad"]

# Excluded, with the reason:
EXCLUDED = [
    # integer data tensors: clconv's kernels are float32 only (Pi GPUs have no int64)
    r"_u?int(8|16|32|64)", r"_int32_trunc", "test_maxpool_2d_uint8",
    # dilated 3-D average pooling (ONNX only: torch's avg_pool3d has no dilation)
    r"test_averagepool_3d_dilations",
    # training mode and random dropout: clconv imports models for inference
    "training_mode", "test_dropout_random_old", "test_training_dropout",
    # other ops whose names share a prefix: quantised conv/matmul, GatherElements/ND
    "test_convinteger", "test_matmulinteger", "test_gather_elements", "test_gathernd",
    # sequences and optionals are not tensors
    "test_identity_sequence", "test_identity_opt",
    # function expansions into ops outside the set (ReduceMax, Exp, ReduceSum, Less, Where...)
    r"test_softmax_.*_expanded", r"test_clip_.*expanded", "test_clip_expanded",
    r"test_leakyrelu.*_expanded", r"test_hardsigmoid.*_expanded", r"test_relu_expanded",
    # zero-size tensors (a 0 dimension): clconv's ops reject empty arrays
    "test_reshape_allowzero_reordered",
]

backend_test = onnx.backend.test.BackendTest(clconv_backend, __name__)
for op in OPS:
    backend_test.include(rf"^test_{op}(_.*)?_cpu$")
for pattern in EXCLUDED:
    backend_test.exclude(pattern)

globals().update(backend_test.enable_report().test_cases)
