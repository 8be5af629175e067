"""conv2d, conv_transpose2d and their gradients (torch.nn.functional semantics, NCHW)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyopencl.array as cla

from .. import algos
from ..arrays import border, check_images, empty, image_stride, on_device, output, padded_planes
from ..build import enqueue_copy, get_kernel, launch
from ..epilogue import NO_ACTIVATION, RELU, Activation
from ..geometry import ConvGeometry, conv_geometry, explicit_pool, transpose_geometry
from ..runtime import current
from .elementwise import channel_affine
from .pool import max_pool2d_windows
from .layout import contiguous_images, copy_images, copy_planes
from ..validation import check_array, check_shape

KERNELS = "conv2d.cl"

# Each op below validates its arguments, then `algos.run` enqueues the variant chosen for
# the layer (forced by CLCONV_ALGO, tuned by `clconv tune`, or the heuristic).


def check_bias(bias, runtime, channels: int):
    if bias is None:
        return
    shape = check_array("bias", bias, runtime, "(out_channels,)")
    check_shape("bias", shape, (channels,))


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) like torch.nn.functional.conv2d."""
    return conv2d_activation(input, weight, bias, stride, padding, dilation, groups)


def conv2d_relu(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """relu(conv2d(...)) in one pass: the activation is fused into the conv's epilogue."""
    return conv2d_activation(input, weight, bias, stride, padding, dilation, groups, RELU)


def conv2d_activation(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
                      activation: Activation = NO_ACTIVATION, residual=None,
                      overwrite_residual: bool = False, out=None):
    """activation(conv2d(...) + residual) in one pass, whichever variant runs: the
    activation (clconv.epilogue.Activation) and the addition of `residual` (a tensor of
    the output's shape, e.g. ResNet's skip connection; None for none) happen in the
    convolution's epilogue. overwrite_residual=True writes the result into `residual`
    itself (a device array), sparing a copy, when the caller no longer needs it; `out`
    (a device array of the output's shape, see arrays.output) is written instead of a new
    array, e.g. a slice of a concatenation."""
    check_activation(activation)
    rt = current()
    x_shape = check_array("input", input, rt, "(N, C, H, W)")
    w_shape = check_array("weight", weight, rt, "(out_channels, in_channels/groups, kH, kW)")
    geo = conv_geometry(x_shape, w_shape, stride, padding, dilation, groups)
    check_bias(bias, rt, geo.K)
    out, act = _output(rt, geo, residual, overwrite_residual, activation, out)
    x, w = on_device(rt, input), on_device(rt, weight)
    b = on_device(rt, bias) if bias is not None else None
    algos.run(rt, "forward", geo, x, w, b, out, act=act)
    return out


def check_activation(activation):
    if not isinstance(activation, Activation):
        raise TypeError(f"activation: expected a clconv.epilogue.Activation, got "
                        f"{type(activation).__name__}")
    if activation.residual:
        raise ValueError("activation: residual=True is set by the residual argument, "
                         "not passed in")


def _output(rt, geo, residual, overwrite_residual, activation, out=None):
    """The output array and the epilogue: a new array or `out`, or the residual's values
    (copied, or the residual array itself) with the epilogue adding what it holds."""
    if residual is None:
        if overwrite_residual:
            raise ValueError("overwrite_residual: True needs a residual, got None")
        return output(rt, geo.output_shape, out), activation
    shape = check_array("residual", residual, rt, "(N, out_channels, Ho, Wo)")
    check_shape("residual", shape, geo.output_shape)
    if overwrite_residual:
        if out is not None:
            raise ValueError("out: give either out or overwrite_residual=True (which writes "
                             "into the residual), not both")
        if not isinstance(residual, cla.Array) or residual.offset != 0:
            raise ValueError("overwrite_residual: True needs the residual as a device array "
                             "(pyopencl) at offset 0, got "
                             + (type(residual).__name__ if not isinstance(residual, cla.Array)
                                else f"an array at offset {residual.offset}"))
        out = residual
    else:  # the epilogue adds what the output array holds: the residual's values
        source = on_device(rt, residual, name="residual")
        if out is None and source is not residual:
            out = source  # uploaded just now: nobody else holds it
        else:  # into `out`, or a copy of the caller's device array
            out = output(rt, geo.output_shape, out)
            enqueue_copy(rt, out.data, source.data, byte_count=out.nbytes)
    return out, replace(activation, residual=True)


class ConstantWeightConv2d:
    """conv2d_activation for one layer whose weights and bias do not change (inference),
    on inputs of one shape: the arguments are checked, the variant chosen and the weights
    packed into the layout it reads (Winograd's transformed weights) once, here; each
    call then only checks the input and enqueues. Built for the runtime current now."""

    def __init__(self, input_shape, weight, bias=None, stride=1, padding=0, dilation=1,
                 groups=1, activation: Activation = NO_ACTIVATION,
                 input_affine: bool = False, max_pool=None):
        """input_affine: calls will pass an input_affine (a batch norm before the layer),
        which a pointwise layer applies as its GEMM loads the input, with the tile the
        CPU class gives that use (algos.pack_forward); calls may still pass one or not.
        max_pool: (kernel, stride, pads_begin, out_size), pairs of ints: the layer is the
        convolution (and activation) followed by that max pool (geometry.explicit_pool;
        a network's stem), and calls return the pooled output. Where the variant fuses
        the pool (PackedForward.max_pool_reason), one launch writes only the pooled
        output; elsewhere the pool runs after the convolution."""
        check_activation(activation)
        self.runtime = rt = current()
        w_shape = check_array("weight", weight, rt,
                              "(out_channels, in_channels/groups, kH, kW)")
        self.geometry = conv_geometry(tuple(input_shape), w_shape, stride, padding,
                                      dilation, groups)
        check_bias(bias, rt, self.geometry.K)
        self.weight = on_device(rt, weight)
        self.bias = on_device(rt, bias) if bias is not None else None
        self.activation = activation
        self._forward = algos.pack_forward(rt, self.geometry, self.weight, input_affine)
        self.max_pool = None if max_pool is None else \
            explicit_pool(self.geometry.output_shape, *_check_max_pool(max_pool))
        # None where one launch runs the convolution and the pool, else why not
        self.max_pool_unfused = None if self.max_pool is None else \
            self._forward.max_pool_reason(rt.profile, self.geometry, self.max_pool)

    def __call__(self, input, residual=None, overwrite_residual: bool = False, out=None,
                 input_affine=None):
        """The layer on `input`; `residual`, overwrite_residual and out as in
        conv2d_activation. input_affine: (scale, shift, activation), the layer on
        activation(input * scale[c] + shift[c]) (an inference batch norm, and a ReLU or
        no activation, before it): applied as a pointwise convolution's GEMM loads its
        input, else in a pass of its own (elementwise.channel_affine). `input` and `out`
        may also be strided images (arrays.image_stride: a channel slice of a
        concatenation of several images, onnx/placement.py): the GEMM variants read and
        write them in place, the others through a contiguous copy. They may also be
        zero-bordered planes (arrays.bordered_planes, onnx/borders.py): an input whose
        border is the layer's padding is read as it lies, as the same convolution
        without padding over the bordered planes (any other is copied first), and an
        output is written inside its borders (by the GEMM variants in place, by the
        others through a copy)."""
        if self.max_pool is not None:
            return self._pooled(input, residual, overwrite_residual, out, input_affine)
        return self._convolve(input, residual, overwrite_residual, out, input_affine)

    def _convolve(self, input, residual, overwrite_residual, out, input_affine):
        rt, geo, forward = self.runtime, self.geometry, self._forward
        self._check_input(input)
        in_border = border(input)
        if in_border is not None:
            # (an input_affine would move the zeros of the border: not read in place)
            unpadded = self.reads_border(in_border) if input_affine is None else None
            if unpadded is not None:
                geo, input = unpadded, padded_planes(input)
            else:
                input = contiguous_images(rt, input)
        strides = {}
        if image_stride(input) is not None:
            if forward.reads_strided_input():
                strides["x_image"] = image_stride(input)
            else:
                input = contiguous_images(rt, input)
        x, fused = on_device(rt, input), {}
        if input_affine is not None:
            scale, shift, before = _check_input_affine(rt, input_affine, geo.C)
            if forward.reads_input_affine(geo):
                fused["input_affine"] = (scale, shift, before.name == "relu")
            else:
                x = channel_affine(contiguous_images(rt, x), scale, shift, before)
                strides.pop("x_image", None)
        slice_out = None  # strided images or bordered planes to copy the result into
        given_out = out
        out_stride, out_border = image_stride(out), border(out)
        if residual is None and (out_stride is not None or out_border is not None):
            check_shape("out", check_images("out", out, rt, "(N, C, H, W)"), geo.output_shape)
            if out_stride is not None and forward.writes_strided_output():
                strides["out_image"] = out_stride
            elif out_border is not None and forward.writes_bordered_output():
                strides["out_border"], out = out_border, padded_planes(out)
            else:
                slice_out, out = out, None
        if strides.keys() & {"out_image", "out_border"}:
            act = self.activation
        else:
            out, act = _output(rt, geo, residual, overwrite_residual, self.activation, out)
        forward.run(rt, geo, x, self.weight, self.bias, out, act, **fused, **strides)
        if slice_out is not None:
            (copy_planes if out_border is not None else copy_images)(rt, slice_out, out)
            return slice_out
        return given_out if "out_border" in strides else out

    def _check_input(self, input):
        x_shape = check_images("input", input, self.runtime, "(N, C, H, W)")
        if x_shape != self.geometry.input_shape:
            raise ValueError(f"input: this layer was prepared for shape "
                             f"{self.geometry.input_shape}, got {x_shape}")

    def _pooled(self, input, residual, overwrite_residual, out, input_affine):
        """The layer and its max pool: `out`, or a new array, of the pool's output shape."""
        if residual is not None or overwrite_residual or input_affine is not None:
            raise ValueError("max_pool: a layer prepared with a max pool takes no residual "
                             "or input_affine")
        rt, pool = self.runtime, self.max_pool
        self._check_input(input)
        pooled = output(rt, pool.output_shape, out)
        if self.max_pool_unfused is not None:
            return max_pool2d_windows(rt, self._convolve(input, None, False, None, None),
                                      (pool.Ho, pool.Wo), pool.kernel, pool.stride,
                                      pool.padding, pool.dilation, False, pooled)
        if border(input) is not None or image_stride(input) is not None:
            input = contiguous_images(rt, input)
        self._forward.run_max_pool(rt, self.geometry, on_device(rt, input), self.weight,
                                   self.bias, pooled, self.activation, pool)
        return pooled

    def reads_border(self, pad: int) -> ConvGeometry | None:
        """The layer as a convolution without padding over input planes zero-bordered by
        `pad` (arrays.bordered_planes), when that is the same convolution: the border
        is its padding on every side it reads; else None."""
        geo = self.geometry
        if geo.pad_top != pad or geo.pad_left != pad:
            return None
        unpadded = conv_geometry((geo.N, geo.C, geo.H + 2 * pad, geo.W + 2 * pad),
                                 geo.weight_shape, geo.stride, 0, geo.dilation, geo.groups)
        return unpadded if (unpadded.Ho, unpadded.Wo) == (geo.Ho, geo.Wo) else None


def _check_max_pool(max_pool) -> tuple:
    if not isinstance(max_pool, (tuple, list)) or len(max_pool) != 4:
        raise TypeError("max_pool: expected (kernel, stride, pads_begin, out_size), got "
                        f"{max_pool!r}")
    return tuple(max_pool)


def _check_input_affine(rt, input_affine, channels: int):
    """(scale, shift, activation) of an input_affine, as device arrays of (C,)."""
    if not isinstance(input_affine, tuple) or len(input_affine) != 3:
        raise TypeError(f"input_affine: expected (scale, shift, activation), got "
                        f"{type(input_affine).__name__}")
    scale, shift, activation = input_affine
    for name, value in (("input_affine scale", scale), ("input_affine shift", shift)):
        check_shape(name, check_array(name, value, rt, "(C,)"), (channels,))
    if not isinstance(activation, Activation) or activation.name not in ("none", "relu"):
        raise ValueError(f"input_affine activation: expected none or relu, got {activation!r}")
    return on_device(rt, scale), on_device(rt, shift), activation


def _transposed_conv(rt, src, w, bias, out_shape, geo: ConvGeometry):
    """Transposed convolution of `src` (N, S, Hs, Ws) into out_shape (N, O, Ho, Wo).

    `geo` is the forward convolution that maps out_shape to src's shape."""
    out = empty(rt, out_shape)
    algos.run(rt, "grad_input", geo, src, w, out, bias=bias)
    return out


def _grad_weight(rt, x, grad_out, geo: ConvGeometry):
    grad_w = empty(rt, geo.weight_shape)
    algos.run(rt, "grad_weight", geo, x, grad_out, grad_w)
    return grad_w


def channel_sum(rt, x):
    """Sum of x over every axis but axis 1 (bias gradients)."""
    n, c = x.shape[0], x.shape[1]
    per_channel = int(np.prod(x.shape[2:], dtype=np.int64))
    out = empty(rt, (c,))
    launch(rt, get_kernel(rt, "reduce.cl", "channel_sum"), c, x, out, n, c, per_channel)
    return out


def check_output_mask(output_mask):
    if len(output_mask) != 3:
        raise ValueError(f"output_mask: expected 3 booleans, got {output_mask!r}")
    return tuple(bool(m) for m in output_mask)


def conv2d_backward(grad_output, input, weight, stride=1, padding=0, dilation=1, groups=1,
                    output_mask=(True, True, True)):
    """Gradients of conv2d: (grad_input, grad_weight, grad_bias); None where masked off."""
    rt = current()
    x_shape = check_array("input", input, rt, "(N, C, H, W)")
    w_shape = check_array("weight", weight, rt, "(out_channels, in_channels/groups, kH, kW)")
    geo = conv_geometry(x_shape, w_shape, stride, padding, dilation, groups)
    g_shape = check_array("grad_output", grad_output, rt, "(N, out_channels, Ho, Wo)")
    check_shape("grad_output", g_shape, geo.output_shape)
    want_input, want_weight, want_bias = check_output_mask(output_mask)
    g = on_device(rt, grad_output)
    grad_input = grad_weight = grad_bias = None
    if want_input:
        grad_input = _transposed_conv(rt, g, on_device(rt, weight), None, geo.input_shape, geo)
    if want_weight:
        grad_weight = _grad_weight(rt, on_device(rt, input), g, geo)
    if want_bias:
        grad_bias = channel_sum(rt, g)
    return grad_input, grad_weight, grad_bias


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1):
    """2-D transposed convolution like torch.nn.functional.conv_transpose2d."""
    rt = current()
    x_shape = check_array("input", input, rt, "(N, C_in, H, W)")
    w_shape = check_array("weight", weight, rt, "(in_channels, out_channels/groups, kH, kW)")
    geo, out_shape = transpose_geometry(x_shape, w_shape, stride, padding, output_padding,
                                        groups, dilation)
    check_bias(bias, rt, out_shape[1])
    b = on_device(rt, bias) if bias is not None else None
    return _transposed_conv(rt, on_device(rt, input), on_device(rt, weight), b, out_shape, geo)


def conv_transpose2d_backward(grad_output, input, weight, stride=1, padding=0,
                              output_padding=0, groups=1, dilation=1,
                              output_mask=(True, True, True)):
    """Gradients of conv_transpose2d: (grad_input, grad_weight, grad_bias)."""
    rt = current()
    x_shape = check_array("input", input, rt, "(N, C_in, H, W)")
    w_shape = check_array("weight", weight, rt, "(in_channels, out_channels/groups, kH, kW)")
    geo, out_shape = transpose_geometry(x_shape, w_shape, stride, padding, output_padding,
                                        groups, dilation)
    g_shape = check_array("grad_output", grad_output, rt, "(N, C_out, Ho, Wo)")
    check_shape("grad_output", g_shape, out_shape)
    want_input, want_weight, want_bias = check_output_mask(output_mask)
    g = on_device(rt, grad_output)
    grad_input = grad_weight = grad_bias = None
    if want_input:  # the forward convolution of grad_output with the same weight
        grad_input = empty(rt, geo.output_shape)
        algos.run(rt, "forward", geo, g, on_device(rt, weight), None, grad_input)
    if want_weight:  # roles swap: grad_output is the conv input, input its grad_output
        grad_weight = _grad_weight(rt, g, on_device(rt, input), geo)
    if want_bias:
        grad_bias = channel_sum(rt, g)
    return grad_input, grad_weight, grad_bias
