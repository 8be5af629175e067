"""The runtime steps a plan is made of. Each step reads device arrays named by
`inputs` and returns one array per name in `outputs`; shapes and parameters were
settled at plan time. Steps that can absorb a following activation (or, for
convolutions, a following per-channel affine map) say so; the planner fuses them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable


from .. import functional as F
from ..ops import elementwise, gemm, layout, padded_pool
from ..epilogue import NO_ACTIVATION, Activation
from ..ops.conv import ConstantWeightConv2d
from ..runtime import current


@dataclass
class Step:
    nodes: list[str]              # source node names (several after fusion)
    op: str                       # op types, "+"-joined after fusion
    inputs: list[str]
    outputs: list[str]
    output_shapes: list[tuple]
    # Inputs whose buffer the (single) output may reuse when that input dies here.
    overwritable_inputs: tuple = ()
    reuse_input: int | None = None   # set by the planner
    # Outputs are views of inputs[0] (reshapes): same buffer, no kernel.
    is_view: bool = False
    act: Activation = NO_ACTIVATION
    fuses_activation = False

    def describe(self) -> str:
        return self.op.lower()

    def variant(self) -> str:
        text = self.describe()
        return text if self.act.name == "none" else f"{text} + {self.act} (fused)"

    def writes_into(self) -> bool:
        """Whether run(args, out) writes its one output into any array `out` of the
        output's shape (a slice of a concatenation's output, see placement.py), not only
        into an input the planner let it reuse."""
        return False

    def writes_strided_images(self) -> bool:
        """Whether run(args, out) also takes an `out` of strided images
        (arrays.image_stride: a channel slice of a concatenation of several images)."""
        return False

    def reads_strided_images(self, position: int) -> bool:
        """Whether run() takes strided images as its input at `position`."""
        return False

    def hidden_bytes(self) -> int:
        """Bytes of a tensor the step may hold while it runs that is no value of the plan
        (counted in the planned peak, plan_memory)."""
        return 0

    def run(self, args, out=None) -> list:
        raise NotImplementedError


@dataclass
class ViewStep(Step):
    """Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout: a new shape, same data."""

    is_view: bool = True

    def describe(self):
        return "view (no kernel)"

    def run(self, args, out=None):
        return [args[0].reshape(shape) for shape in self.output_shapes]


@dataclass
class ActivationStep(Step):
    overwritable_inputs: tuple = (0,)

    def describe(self):
        return "elementwise"

    def writes_into(self):
        return True

    def run(self, args, out=None):
        return [elementwise.activation(args[0], self.act, out=out)]


@dataclass
class BinaryStep(Step):
    binary_op: str = "add"
    fuses_activation = True

    broadcasts: bool = False

    def describe(self):
        return self.binary_op + (" (broadcast)" if self.broadcasts else "")

    def writes_into(self):
        return True

    def run(self, args, out=None):
        return [elementwise.binary(self.binary_op, args[0], args[1], self.act, out=out)]


@dataclass
class AffineStep(Step):
    """x * scale[c] + shift[c] (inference batch norm); inputs are x, scale, shift, the
    last two host constants (so the planner can fold them into a convolution)."""

    fuses_activation = True
    overwritable_inputs: tuple = (0,)

    def describe(self):
        return "per-channel affine"

    def writes_into(self):
        return True

    def run(self, args, out=None):
        return [elementwise.channel_affine(args[0], args[1], args[2], self.act, out=out)]


@dataclass
class ConvStep(Step):
    """conv2d (bias and weight in inputs[1:], constants or run-time tensors), with
    optional explicit pre-padding for asymmetric pads; any activation fused into the
    convolution's epilogue."""

    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    pre_pad: tuple | None = None    # (pads_begin, pads_end) over all 4 axes
    dilation: tuple = (1, 1)
    groups: int = 1
    input_view: tuple | None = None   # 1-D convs run as 2-D with a unit height
    weight_view: tuple | None = None
    # weight and bias are model constants: the layer is prepared (variant chosen,
    # weights packed) on its first run, and later runs reuse it
    constant_weights: bool = False
    # inputs[residual_input]: a tensor of the output's shape added before the activation
    # (a fused Add, see plan.fuse_residual_adds)
    residual_input: int | None = None
    # a per-channel affine map (and ReLU) applied to the input first, its scale and shift
    # the last two inputs (a fused batch norm before a 1x1 conv, plan.fuse_input_affines)
    input_affine: Activation | None = None
    # (kernel, stride, pads_begin, out_size): the max pool that alone read the output,
    # run after the activation (plan.fuse_max_pools); the step's output is the pool's,
    # and unpooled_shape the convolution's own
    max_pool: tuple | None = None
    unpooled_shape: tuple | None = None
    fuses_activation = True
    _prepared: ConstantWeightConv2d | None = field(default=None, repr=False, compare=False)

    def describe(self):
        text = (f"conv{len(self.stride)}d stride={self.stride} dilation={self.dilation} "
                f"groups={self.groups}")
        if self.pre_pad:
            text += " with explicit asymmetric padding"
        if self.residual_input is not None:
            text += " + residual add (fused)"
        if self.input_affine is not None:
            text = "per-channel affine" + (" + relu" if self.input_affine.name == "relu"
                                           else "") + " on its input, then " + text
        if self.max_pool is not None:
            kernel, stride = self.max_pool[:2]
            text += f" + max pool {kernel}/{stride} (fused)"
        return text

    def writes_into(self):
        # out means "the residual's buffer" when a residual is fused (see plan_memory)
        return self.residual_input is None and len(self.stride) == 2 and not self.input_view

    def writes_strided_images(self):
        # ConstantWeightConv2d takes them (its GEMM variants in place), but not pooled
        return self.writes_into() and self.constant_weights and self.max_pool is None

    def reads_strided_images(self, position):
        return (position == 0 and self.constant_weights and len(self.stride) == 2
                and not self.input_view and not self.pre_pad and self.max_pool is None)

    def hidden_bytes(self):
        # a device whose variant cannot fuse the pool writes the convolution's output
        # first (ConstantWeightConv2d.max_pool_unfused)
        return 4 * math.prod(self.unpooled_shape) if self.max_pool is not None else 0

    def run(self, args, out=None):
        x, w = args[0], args[1]
        input_affine = None
        if self.input_affine is not None:
            input_affine, args = (args[-2], args[-1], self.input_affine), args[:-2]
        residual = None
        if self.residual_input is not None:
            args, residual = args[:self.residual_input], args[self.residual_input]
        bias = args[2] if len(args) > 2 else None
        if self.input_view:
            x, w = x.reshape(self.input_view), w.reshape(self.weight_view)
        if self.pre_pad:
            x = layout.pad(x, *self.pre_pad)
        if residual is not None:  # out: the residual's buffer, which this step may overwrite
            fused = {"residual": residual, "overwrite_residual": out is not None}
        else:  # out: where the planner placed the output (a concatenation's slice)
            fused = {"out": out}
        if len(self.stride) == 3:
            y = F.conv3d_activation(x, w, bias, self.stride, self.padding, self.dilation,
                                    self.groups, self.act)  # fused into the epilogue
        elif not self.constant_weights:
            y = F.conv2d_activation(x, w, bias, self.stride, self.padding, self.dilation,
                                    self.groups, self.act, **fused)  # in the epilogue
        else:
            prepared = self._prepared
            if (prepared is None or prepared.runtime is not current()
                    or prepared.weight.base_data is not w.base_data):
                prepared = self._prepared = ConstantWeightConv2d(
                    x.shape, w, bias, self.stride, self.padding, self.dilation, self.groups,
                    self.act, input_affine=input_affine is not None,
                    max_pool=self.max_pool)
            y = prepared(x, input_affine=input_affine, **fused)
        # (strided images cannot be reshaped; a 2-D convolution's shape is already right)
        return [y if tuple(y.shape) == tuple(self.output_shapes[0])
                else y.reshape(self.output_shapes[0])]


@dataclass
class ConvTransposeStep(Step):
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    output_padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1
    crop: tuple | None = None   # (pads_begin, pads_end) applied after a pad-0 transpose
    input_view: tuple | None = None
    weight_view: tuple | None = None

    def describe(self):
        return (f"conv_transpose{len(self.stride)}d stride={self.stride} groups={self.groups}"
                + (" with explicit crop" if self.crop else ""))

    def run(self, args, out=None):
        x, w = args[0], args[1]
        bias = args[2] if len(args) > 2 else None
        if self.input_view:
            x, w = x.reshape(self.input_view), w.reshape(self.weight_view)
        transpose = F.conv_transpose3d if len(self.stride) == 3 else F.conv_transpose2d
        if self.crop is None:
            y = transpose(x, w, bias, self.stride, self.padding, self.output_padding,
                          self.groups, self.dilation)
        else:
            y = transpose(x, w, None, self.stride, 0, 0, self.groups, self.dilation)
            y = layout.pad(y, *self.crop)
            if bias is not None:
                channel = (1, -1) + (1,) * len(self.stride)
                y = elementwise.binary("add", y, bias.reshape(channel), out=y)
        return [y.reshape(self.output_shapes[0])]


@dataclass
class GemmStep(Step):
    alpha: float = 1.0
    beta: float = 1.0
    trans_a: bool = False
    trans_b: bool = False
    # B is a model constant (a fully connected layer's weights): packed once, on the
    # first run (ops/gemm.pack_b), and later runs reuse it
    constant_b: bool = False
    fuses_activation = True
    _packed_b: tuple | None = field(default=None, repr=False, compare=False)

    def describe(self):
        return ("gemm" + (" (B transposed)" if self.trans_b else "")
                + (", B packed once" if self.constant_b else ""))

    def run(self, args, out=None):
        a, b = args[0], args[1]
        c = args[2] if len(args) > 2 else None
        trans_b = self.trans_b
        if self.constant_b:
            rt, packed = current(), self._packed_b
            if packed is None or packed[0] is not rt or packed[1] is not b.base_data:
                rows = self.output_shapes[0][0]
                packed = self._packed_b = (rt, b.base_data, gemm.pack_b(b, rows, trans_b))
            b, trans_b = packed[2], False
        return [gemm.gemm(a, b, c, self.alpha, self.beta, self.trans_a, trans_b, self.act)]


@dataclass
class MatMulStep(Step):
    """numpy's matmul on the one GEMM, which applies a following activation."""

    fuses_activation = True

    def describe(self):
        return "batched matmul"

    def run(self, args, out=None):
        return [gemm.matmul(args[0], args[1], self.act)]


@dataclass
class CallStep(Step):
    """Any other op: `call(*args)` returns the outputs (a list); with writes_out,
    `call(*args, out=...)` writes its one output into a given array."""

    call: Callable | None = None
    description: str = ""
    writes_out: bool = False
    # an average pool without padding whose every window averages whole taps, as
    # (kernel, stride, dilation, count_include_pad): each output pixel a fixed average
    # of input pixels, so a pointwise convolution commutes with it (plan.py
    # pool_before_pointwise_convs)
    pool_window: tuple | None = None
    # a 2-D max pool of dilation 1, as (kernel, stride, pads_begin, out_size): a
    # convolution read only by it may run it in its epilogue (plan.fuse_max_pools)
    max_pool: tuple | None = None

    def describe(self):
        return self.description or self.op.lower()

    def writes_into(self):
        return self.writes_out

    def run(self, args, out=None):
        return self.call(*args, out=out) if self.writes_out else self.call(*args)


@dataclass
class ConcatStep(Step):
    """numpy.concatenate along `axis`. Inputs listed in in_place were written into their
    slice of the output by their producers (placement.py), so only the others are
    copied; with all in place the step enqueues nothing."""

    axis: int = 1
    in_place: tuple = ()

    def describe(self):
        text = f"concat axis={self.axis}"
        if self.in_place:
            text += f" ({len(self.in_place)} of {len(self.inputs)} inputs written in place)"
        return text

    def writes_into(self):
        return True

    def writes_strided_images(self):
        return True

    def reads_strided_images(self, position):
        return True

    def run(self, args, out=None):
        return [layout.concat(args, self.axis, out=out, in_place=self.in_place)]


def _pooled_view(x, out, input_view, out_size):
    """The input and `out` in the 4-D shapes the 2-D pooling kernels take."""
    if input_view:
        x = x.reshape(input_view)
    if out is not None:
        out = out.reshape(tuple(x.shape[:2]) + tuple(out_size))
    return x, out


def max_pool_call(kernel, stride, pads_begin, out_size, dilation, input_view, output_shape):
    def call(x, out=None):
        x, out = _pooled_view(x, out, input_view, out_size)
        y = padded_pool.max_pool2d_padded(x, kernel, stride, pads_begin, out_size, dilation,
                                          out=out)
        return [y.reshape(output_shape)]
    return call


def max_pool_with_indices_call(kernel, stride, pads_begin, out_size, dilation, input_view,
                               output_shape):
    def call(x):
        if input_view:
            x = x.reshape(input_view)
        y, idx = padded_pool.max_pool2d_padded(x, kernel, stride, pads_begin, out_size,
                                               dilation, return_indices=True)
        return [y.reshape(output_shape), idx.reshape(output_shape)]
    return call


def whole_window_pool_call(pool_window, output_shape, input_affine: Activation | None = None):
    """avg_pool_call for a CallStep's pool_window (no padding, no view) into output_shape."""
    kernel, stride, dilation, include = pool_window
    return avg_pool_call(kernel, stride, (0, 0, 0, 0), output_shape[2:], dilation, include,
                         None, output_shape, input_affine)


def avg_pool_call(kernel, stride, pads, out_size, dilation, count_include_pad, input_view,
                  output_shape, input_affine: Activation | None = None):
    """The pool as a CallStep's call(x, out=None); with input_affine (none or relu),
    call(x, scale, shift, out=None): the pool of input_affine(x * scale + shift)."""
    def call(x, *affine, out=None):
        x, out = _pooled_view(x, out, input_view, out_size)
        y = padded_pool.avg_pool2d_padded(
            x, kernel, stride, pads, out_size, dilation, count_include_pad, out=out,
            input_affine=(*affine, input_affine) if input_affine is not None else None)
        return [y.reshape(output_shape)]
    return call
