"""Max, average and adaptive average pooling and their gradients (NCHW), one kernel
each (kernels_cl/pool2d.cl), and on CPUs vector kernels for pooling without indices
(kernels_cl/pool_values.cl); ONNX's MaxPool and AveragePool use the same ones."""
from __future__ import annotations

import numpy as np

from .. import cpu_class, params
from ..algos.base import is_cpu
from ..arrays import empty, on_device, output
from ..build import (DEFAULT_GROUP_SIZE, get_kernel, group_size, launch, launch_grid,
                     resolve_local, row_bands)
from ..device import DeviceKind
from ..geometry import PoolGeometry, pool_geometry  # noqa: F401 (PoolGeometry: public name)
from ..runtime import current
from ..validation import check_array, check_int, check_shape
from .elementwise import channel_affine

KERNELS = "pool2d.cl"
VALUES_KERNELS = "pool_values.cl"  # without indices, on CPUs (values_only_kernels)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """Max pooling like torch.nn.functional.max_pool2d.

    With return_indices, also returns int32 flat indices into each H*W plane
    (torch returns int64; OpenCL 1.2 on the Pi has no 64-bit integers)."""
    rt = current()
    shape = check_array("input", input, rt, "(N, C, H, W)")
    geo = pool_geometry(shape, kernel_size, stride, padding, dilation, bool(ceil_mode))
    return max_pool2d_windows(rt, on_device(rt, input), (geo.Ho, geo.Wo), geo.kernel,
                              geo.stride, geo.padding, geo.dilation, return_indices)


# Windows up to this size on each side (and column strides up to it) are compiled in
# (POOL_KH, POOL_KW, POOL_SW of pool2d.cl): fixed loops that POCL vectorises (2-4x faster
# there), with no integer division. Larger ones keep the run-time loops. Not on VC4CL:
# VC4C compiled 4x4 windows only on some tries (register allocation) and failed one
# outright, and each window size would be one more slow program build on the Pi.
FIXED_WINDOW_MAX = 7

# Outputs per work-item of the values-only pools (POOL_RUN of pool_values.cl): a vector
# register's floats, at least 8 (8 ran 1.4x faster than 4 on POCL; 16 on AVX-512 took
# SqueezeNet's first pool (64 x 111 x 111) 0.117 -> 0.105 ms, 64 x 112 x 112 0.229 -> 0.200).
def pool_run(profile) -> int:
    cls = cpu_class.of_profile(profile)
    return 16 if cls is not None and cls.lanes >= 16 else 8


def window_defines(profile, kernel, stride) -> dict[str, int]:
    """pool2d.cl's defines for a (kh, kw) window with column stride stride[1] on a device:
    compiled in when small, none otherwise."""
    kh, kw = kernel
    if profile.kind == DeviceKind.VC4CL or max(kh, kw, stride[1]) > FIXED_WINDOW_MAX:
        return {}
    return {"POOL_KH": int(kh), "POOL_KW": int(kw), "POOL_SW": int(stride[1])}


def inner_planes(planes, H, W, row_items, kw, sw, dw, pw) -> tuple[int, int]:
    """The planes [lo, hi) where a *_inner pooling kernel may read its columns unclamped:
    column ox*sw + kx*dw - pw of a row, for every work-item ox < row_items, stays inside
    the planes*H*W input (see pool2d.cl)."""
    before = pw  # elements read before a plane's first
    after = (row_items - 1) * sw + (kw - 1) * dw - pw - (W - 1)  # past its last
    plane_size = H * W
    return -(-before // plane_size), planes - -(-max(after, 0) // plane_size)


def window_grid(rt, name, defines, out_shape, in_hw, columns, buffers, scalars):
    """Launch pool2d.cl's forward kernel `name` on (ox, oy, plane) grids over out_shape,
    with arguments (*buffers, plane0, planes, *scalars); `columns` = (kw, sw, dw, pw).
    With a fixed window, the planes inner_planes allows go to the faster `name`_inner
    kernel, the others to `name`."""
    N, C, Ho, Wo = out_shape
    planes = N * C
    width = group_size(DEFAULT_GROUP_SIZE, Wo)
    local = (width, max(1, DEFAULT_GROUP_SIZE // width), 1)
    kernel = get_kernel(rt, KERNELS, name, defines)
    launches = [(kernel, 0, planes)]
    if defines:
        inner = get_kernel(rt, KERNELS, name + "_inner", defines)
        lx = resolve_local(rt, inner, (Wo, Ho, planes), local)[0]
        row_items = -(-Wo // lx) * lx  # the global size along x
        lo, hi = inner_planes(planes, *in_hw, row_items, *columns)
        if lo < hi:
            launches = [(kernel, 0, lo), (inner, lo, hi), (kernel, hi, planes)]
    for k, first, end in launches:
        if end > first:
            launch_grid(rt, k, (Wo, Ho, end - first), local, *buffers,
                        *[np.int32(v) for v in (first, end - first, *scalars)])


def plane_grid(rt, kernel, shape, *args):
    """Launch a pooling kernel on a (W, H, planes) grid over the NCHW `shape` (the output
    for the forward kernels, the input for the gathering gradient); a row per group."""
    N, C, H, W = shape
    width = group_size(DEFAULT_GROUP_SIZE, W)
    launch_grid(rt, kernel, (W, H, N * C), (width, max(1, DEFAULT_GROUP_SIZE // width), 1),
                *args)


def max_pool2d_windows(rt, x, out_size, kernel, stride, pads_begin, dilation, return_indices,
                       out=None):
    """Max over windows starting at o*stride - pads_begin, for validated arguments; into
    `out` when given (see arrays.output).

    Shared by max_pool2d and ONNX's MaxPool (asymmetric pads, explicit output size)."""
    N, C, H, W = x.shape
    out = output(rt, (N, C) + tuple(out_size), out)
    if not return_indices and values_only_kernels(rt.profile):
        if is_global(x.shape, out_size, kernel, pads_begin):
            launch(rt, get_kernel(rt, VALUES_KERNELS, "global_max_pool2d"), N * C, x, out, H * W)
            return out
        defines = window_defines(rt.profile, kernel, stride)
        if defines and dilation[1] == 1:
            max_values(rt, x, out, defines, stride[0], pads_begin, dilation[0])
            return out
    indices = empty(rt, out.shape, np.int32) if return_indices else out
    window_grid(rt, "max_pool2d_forward", window_defines(rt.profile, kernel, stride), out.shape,
                (H, W),
                (kernel[1], stride[1], dilation[1], pads_begin[1]),
                (x.data, out.data, indices.data, np.int32(bool(return_indices))),
                (H, W, *out_size, *kernel, *stride, *pads_begin, *dilation))
    return (out, indices) if return_indices else out


def values_only_kernels(profile) -> bool:
    """Whether pooling without indices takes pool_values.cl's explicit-vector kernels:
    on CPUs, where POCL keeps them SIMD. GPUs keep pool2d.cl's work-item per output
    (VC4C compiles those)."""
    return is_cpu(profile)


def is_global(in_shape, out_size, kernel, pads) -> bool:
    """Whether one window, unpadded, covers each whole plane."""
    return tuple(out_size) == (1, 1) and tuple(kernel) == tuple(in_shape[2:]) and not any(pads)


# Outputs of a row per work-item of max_pool2d_values (POOL_RUNS runs of POOL_RUN): 64,
# whose kept row maxima stay in registers (4 vectors on AVX-512, 8 on AVX2). Compiled
# for AVX2, SqueezeNet's first pool (55 outputs a row) took 0.18 ms in runs of 4 x 8
# outputs, 0.16 in runs of 8 x 8 (POCL for haswell on the Xeon, session 26).
VALUES_ROW = 64
# Work-items per group of max_pool2d_values, along the planes.
VALUES_GROUP = 4


def max_values(rt, x, out, defines, sh, pads_begin, dh):
    """pool_values.cl's max_pool2d_values over out's (N, C, Ho, Wo), defines from
    window_defines: each work-item pools up to VALUES_ROW outputs of each row of a band
    of rows of one plane."""
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2:]
    run = pool_run(rt.profile)
    runs = -(-Wo // run)
    per_item = min(runs, max(1, VALUES_ROW // run))
    chunks = -(-runs // per_item)
    band, bands = row_bands(Ho, chunks * N * C)  # few planes: bands of rows
    kernel = get_kernel(rt, VALUES_KERNELS, "max_pool2d_values",
                        dict(defines, POOL_RUN=run, POOL_RUNS=per_item,
                             POOL_SH=min(sh, defines["POOL_KH"])))
    launch_grid(rt, kernel, (chunks, bands, N * C),
                (1, 1, group_size(VALUES_GROUP, N * C)), x.data, out.data,
                *[np.int32(v) for v in (x.size, runs, N * C, H, W, Ho, Wo, sh, *pads_begin,
                                        dh, band)])


def max_pool2d_backward(grad_output, indices, input_shape, kernel_size=None, stride=None,
                        padding=0, dilation=1, ceil_mode=False):
    """Route grad_output to the input positions recorded in `indices`.

    Given the forward pass's window (kernel_size, stride, padding, dilation, ceil_mode,
    as in torch's max_pool2d_with_indices_backward), every input element gathers its
    gradient in parallel; without it, indices may be arbitrary and each plane is walked
    by one work-item."""
    rt = current()
    input_shape = check_input_shape(input_shape)
    g_shape = check_array("grad_output", grad_output, rt, "(N, C, Ho, Wo)")
    i_shape = check_array("indices", indices, rt, "(N, C, Ho, Wo)", dtype="int")
    geo = None
    if kernel_size is not None:  # then the window says which of the two is wrong
        geo = pool_geometry(input_shape, kernel_size, stride, padding, dilation,
                            bool(ceil_mode))
        check_shape("grad_output", g_shape, geo.output_shape)
    check_shape("indices", i_shape, g_shape)
    if g_shape[:2] != input_shape[:2]:
        raise ValueError(f"grad_output: expected shape {input_shape[:2] + g_shape[2:]} "
                         f"(N, C of input_shape {input_shape}), got {g_shape}")
    planes = g_shape[0] * g_shape[1]
    plane_size = input_shape[2] * input_shape[3]
    if isinstance(indices, np.ndarray) and (indices.min() < 0 or indices.max() >= plane_size):
        raise ValueError(f"indices: expected values in [0, {plane_size}) for input_shape "
                         f"{input_shape}, got range [{indices.min()}, {indices.max()}]")
    if isinstance(indices, np.ndarray) or indices.dtype == np.int32:
        idx = on_device(rt, indices, np.int32)
    else:  # a device array of another integer type, e.g. int64 from elsewhere
        idx = on_device(rt, indices.astype(np.int32))
    grad_input = empty(rt, input_shape)
    if geo is not None:  # a work-item per input element, on the input's plane grid
        plane_grid(rt, get_kernel(rt, KERNELS, "max_pool2d_backward_windows"), input_shape,
                   on_device(rt, grad_output), idx, grad_input, planes, geo.H, geo.W,
                   geo.Ho, geo.Wo, *geo.kernel, *geo.stride, *geo.padding, *geo.dilation)
        return grad_input
    launch(rt, get_kernel(rt, KERNELS, "max_pool2d_backward"), planes,
           on_device(rt, grad_output), idx, grad_input, plane_size, g_shape[2] * g_shape[3])
    return grad_input


def check_input_shape(input_shape, layout="(N, C, H, W)") -> tuple[int, ...]:
    """input_shape as a tuple of positive ints, one per axis of `layout`."""
    rank = layout.count(",") + 1
    shape = tuple(input_shape)
    if len(shape) != rank or not all(isinstance(s, (int, np.integer)) and s > 0
                                     for s in shape):
        raise ValueError(f"input_shape: expected {rank} positive ints {layout}, "
                         f"got {input_shape!r}")
    return tuple(int(s) for s in shape)


def _divisor(divisor_override) -> int:
    """The kernels' divisor_override: 0 for none."""
    return 0 if divisor_override is None else check_int("divisor_override", divisor_override, 1)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """Average pooling like torch.nn.functional.avg_pool2d."""
    rt = current()
    shape = check_array("input", input, rt, "(N, C, H, W)")
    geo = pool_geometry(shape, kernel_size, stride, padding, 1, bool(ceil_mode))
    return avg_pool2d_windows(rt, on_device(rt, input), (geo.Ho, geo.Wo), geo.kernel,
                              geo.stride, geo.padding + geo.padding, geo.dilation,
                              count_include_pad, _divisor(divisor_override))


def avg_pool2d_windows(rt, x, out_size, kernel, stride, pads, dilation, count_include_pad,
                       divisor_override=0, out=None, input_affine=None):
    """Average over windows starting at o*stride - pads_begin, for validated arguments;
    pads = (top, left, bottom, right), the padded input's extent (count_include_pad).
    input_affine: (scale, shift, activation), the pool of activation(x * scale[c] +
    shift[c]) (an inference batch norm, and a ReLU or none, before it): applied as the
    vector kernel loads x where it runs, else in a pass of its own.

    Shared by avg_pool2d and ONNX's AveragePool (asymmetric pads, explicit output size);
    into `out` when given (see arrays.output)."""
    N, C, H, W = x.shape
    out = output(rt, (N, C) + tuple(out_size), out)
    if input_affine is not None:
        scale, shift, act = input_affine
        for name, value in (("input_affine scale", scale), ("input_affine shift", shift)):
            check_shape(name, check_array(name, value, rt, "(C,)"), (C,))
        input_affine = (on_device(rt, scale), on_device(rt, shift), act)
    defines = window_defines(rt.profile, kernel, stride)
    vector = bool(values_only_kernels(rt.profile) and defines and dilation[1] == 1
                  and whole_windows((H, W), out_size, kernel, stride, pads, dilation))
    if input_affine is not None and not vector:
        x, input_affine = channel_affine(x, *input_affine), None  # a pass of its own
    if (input_affine is None and values_only_kernels(rt.profile)
            and is_global(x.shape, out_size, kernel, pads)):
        global_avg(rt, x, out, divisor_override or H * W)
        return out
    if vector:
        avg_values(rt, x, out, defines, stride[0], dilation[0],
                   divisor_override or kernel[0] * kernel[1], input_affine)
        return out
    window_grid(rt, "avg_pool2d_forward", defines, out.shape,
                (H, W),
                (kernel[1], stride[1], dilation[1], pads[1]), (x.data, out.data),
                (H, W, *out_size, *kernel, *stride, *pads, *dilation,
                 bool(count_include_pad), divisor_override))
    return out


def whole_windows(in_size, out_size, kernel, stride, pads, dilation) -> bool:
    """Whether every window lies inside the input: no padding, none past its end."""
    return not any(pads) and all(
        (i - d * (k - 1) - 1) // s + 1 == o
        for i, o, k, s, d in zip(in_size, out_size, kernel, stride, dilation))


def avg_values(rt, x, out, defines, sh, dh, divisor, input_affine=None):
    """pool_values.cl's avg_pool2d_values over out's (N, C, Ho, Wo), windows whole,
    defines from window_defines; input_affine as avg_pool2d_windows'."""
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2:]
    run = pool_run(rt.profile)
    runs = -(-Wo // run)
    affine = {}
    scale = shift = x
    if input_affine is not None:
        scale, shift, act = input_affine
        affine = {"POOL_AFFINE": 2 if act.name == "relu" else 1}
    kernel = get_kernel(rt, VALUES_KERNELS, "avg_pool2d_values",
                        dict(defines, POOL_RUN=run, **affine))
    width = group_size(VALUES_GROUP, runs)
    launch_grid(rt, kernel, (runs, N * C), (width, max(1, VALUES_GROUP // width)),
                x.data, out.data,
                *[np.int32(v) for v in (x.size, runs, N * C, H, W, Ho, Wo, sh, dh)],
                np.float32(divisor), scale.data, shift.data, np.int32(C))


def global_avg(rt, x, out, divisor):
    """out[n, c] = the sum of x[n, c] / divisor (pool_values.cl's global_avg_pool2d)."""
    N, C, H, W = x.shape
    launch(rt, get_kernel(rt, VALUES_KERNELS, "global_avg_pool2d"), N * C, x, out, H * W,
           np.float32(divisor))


def avg_pool2d_backward(grad_output, input_shape, kernel_size, stride=None, padding=0,
                        ceil_mode=False, count_include_pad=True, divisor_override=None):
    """Gradient of avg_pool2d w.r.t. its input."""
    rt = current()
    input_shape = check_input_shape(input_shape)
    geo = pool_geometry(input_shape, kernel_size, stride, padding, 1, bool(ceil_mode))
    g_shape = check_array("grad_output", grad_output, rt, "(N, C, Ho, Wo)")
    check_shape("grad_output", g_shape, geo.output_shape)
    divisor = _divisor(divisor_override)
    grad_input = empty(rt, input_shape)
    launch(rt, get_kernel(rt, KERNELS, "avg_pool2d_backward"), grad_input.size,
           on_device(rt, grad_output), grad_input, geo.H, geo.W, geo.Ho, geo.Wo,
           *geo.kernel, *geo.stride, *geo.padding, bool(count_include_pad), divisor)
    return grad_input


def adaptive_avg_pool2d(input, output_size):
    """Adaptive average pooling; output_size=1 is global average pooling."""
    rt = current()
    shape = check_array("input", input, rt, "(N, C, H, W)")
    Ho, Wo = params.pair("output_size", output_size, minimum=1)
    out = empty(rt, shape[:2] + (Ho, Wo))
    if values_only_kernels(rt.profile) and (Ho, Wo) == (1, 1):
        global_avg(rt, on_device(rt, input), out, shape[2] * shape[3])
        return out
    launch(rt, get_kernel(rt, KERNELS, "adaptive_avg_pool2d_forward"), out.size,
           on_device(rt, input), out, shape[2], shape[3], Ho, Wo)
    return out


def adaptive_avg_pool2d_backward(grad_output, input_shape):
    """Gradient of adaptive_avg_pool2d; the output size is grad_output's."""
    rt = current()
    input_shape = check_input_shape(input_shape)
    g_shape = check_array("grad_output", grad_output, rt, "(N, C, Ho, Wo)")
    if g_shape[:2] != input_shape[:2]:
        raise ValueError(f"grad_output: expected shape {input_shape[:2] + g_shape[2:]} "
                         f"(N, C of input_shape {input_shape}), got {g_shape}")
    grad_input = empty(rt, input_shape)
    launch(rt, get_kernel(rt, KERNELS, "adaptive_avg_pool2d_backward"), grad_input.size,
           on_device(rt, grad_output), grad_input, input_shape[2], input_shape[3],
           g_shape[2], g_shape[3])
    return grad_input
