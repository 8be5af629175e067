"""The op table: every functional op with its float64 reference, torch's name for it, a
seeded input generator, its gradient and the bad inputs it must refuse.

Data only. `tests/test_ops.py` (reference and torch), `tests/test_validation.py` (bad
input raises before any kernel is launched) and `clconv check` read it, so an op added
here is tested in all three ways; see CONTRIBUTING.md.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import functional as F
from . import params
from . import reference as R
from . import reference3d as R3

_REFERENCES = {1: R, 2: R, 3: R3}  # the reference module of each spatial rank
_LAYOUTS = {1: "(N, C, L)", 2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}
_TUPLE_WORDS = {1: "a 1-tuple", 2: "a pair", 3: "a triple"}
# the largest spatial size a sample draws (exclusive): 3-D volumes grow as its cube
_SIZE_LIMITS = {1: 12, 2: 12, 3: 8}


@dataclass(frozen=True)
class Bad:
    """A bad value for one argument of a valid call, and what it must raise.

    `value` may be a function of the valid call's arguments (a dict by name) when the bad
    value depends on the sample; `match` is a regular expression the message contains.
    With `grad`, the value goes to the op's gradient instead of the op."""

    argument: str
    value: object
    error: type
    match: str
    grad: bool = False

    def __str__(self):
        value = "<from sample>" if callable(self.value) else repr(self.value)
        return f"{'grad ' if self.grad else ''}{self.argument}={value}"


@dataclass(frozen=True)
class Grad:
    """An op's gradient: `args(args, kwargs, g)` gives its call from the forward call's
    arguments and a random grad_output `g` shaped like the (first) forward output.
    `torch_inputs`: the forward's positional arguments whose torch gradients (autograd)
    are this op's outputs, in order (an argument that is None is skipped)."""

    op: Callable
    reference: Callable
    args: Callable
    torch_inputs: tuple = (0,)
    scale: Callable | None = None


@dataclass(frozen=True)
class Op:
    """One functional op.

    `sample(rng, batch)` returns (args, kwargs) of a valid call on seeded random data
    that reaches every channel; `torch` names the op in torch.nn.functional (None: no
    counterpart); `scale(args, kwargs, expected)` the error scale `compare.outputs_error`
    divides by (None: relative to the largest expected value); `exact` for selections
    (max pooling), which must match bit for bit; `samples`: how many test_ops draws."""

    name: str
    op: Callable
    reference: Callable
    sample: Callable
    torch: str | None = None
    scale: Callable | None = None
    grad: Grad | None = None
    bad: tuple = ()
    exact: bool = False
    samples: int = 4


def randn(rng, shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _abs(value):
    return np.abs(value) if isinstance(value, np.ndarray) and value.dtype.kind == "f" else value


def abs_scale(reference):
    """The scale of an op that is a sum of products: the reference on |inputs|, so float32
    rounding is measured against the sum of the magnitudes that met in each element."""
    def scale(args, kwargs, expected):
        return reference(*[_abs(a) for a in args], **{k: _abs(v) for k, v in kwargs.items()})
    return scale


def relative_scale(args, kwargs, expected):
    """|expected| (+ a floor): element-wise ops round each element by itself."""
    return np.abs(expected) + 1e-6


def bind(function, args, kwargs, argument=None, value=None):
    """(args, kwargs) of a call of `function`, with `argument` replaced by `value` (a
    function of the arguments by name, or the value itself)."""
    bound = inspect.signature(function).bind(*args, **kwargs)
    if argument is not None:
        by_name = dict(bound.arguments)
        bound.arguments[argument] = value(by_name) if callable(value) else value
    return bound.args, bound.kwargs


def grad_call(spec: Op, args, kwargs, g):
    """(args, kwargs) of the gradient's call for a forward call and grad_output `g`."""
    return spec.grad.args(args, kwargs, g)


def first(output):
    return output[0] if isinstance(output, tuple) else output


# --------------------------------------------------------------------------- samples

def _drawn(draw, reference):
    """A sample function that draws until the draw and the reference accept the call (the
    draws are seeded, so the result is too)."""
    def sample(rng, batch=None):
        for _ in range(1000):
            try:
                args, kwargs = draw(rng, int(rng.integers(1, 4)) if batch is None else batch)
                reference(*args, **kwargs)
            except ValueError:
                continue
            return args, kwargs
        raise RuntimeError(f"{draw.__name__}: no valid sample in 1000 draws")
    return sample


def _maybe_tuple(rng, value, dims):
    """An int as it is or, now and then, as the tuple torch also takes."""
    return (value,) * dims if rng.random() < 0.25 else value


def _conv_draw(dims, transposed):
    def draw(rng, batch):
        if rng.random() < 1 / 6:  # depthwise, with a channel multiplier of 1 or 2
            groups = c_in = int(rng.integers(1, 5))
            c_out = c_in * int(rng.choice((1, 2)))
        else:
            groups = int(rng.choice((1, 1, 2, 3)))
            c_in, c_out = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
        kernel = tuple(int(k) for k in rng.integers(1, 5, dims))
        stride, dilation = int(rng.choice((1, 1, 2, 3))), int(rng.choice((1, 1, 2)))
        size = tuple(int(n) for n in rng.integers(1, _SIZE_LIMITS[dims], dims))
        x = randn(rng, (batch, c_in) + size)
        if transposed:
            w = randn(rng, (c_in, c_out // groups) + kernel)
            kwargs = dict(stride=_maybe_tuple(rng, stride, dims),
                          padding=int(rng.integers(0, 3)),
                          output_padding=int(rng.integers(0, max(stride, dilation))),
                          groups=groups, dilation=dilation)
        else:
            w = randn(rng, (c_out, c_in // groups) + kernel)
            padding = rng.choice(np.array([0, 0, 1, 2, "valid", "same"], dtype=object))
            if padding == "same" and stride != 1:
                padding = 1
            kwargs = dict(stride=_maybe_tuple(rng, stride, dims), padding=padding,
                          dilation=dilation, groups=groups)
        b = randn(rng, (c_out,)) if rng.random() < 0.7 else None
        return (x, w, b), kwargs
    return draw


def _pool_draw(dims, kind, reference):
    def draw(rng, batch):
        kernel = tuple(int(k) for k in rng.integers(1, 5, dims))
        kernel_size = kernel[0] if dims == 1 or len(set(kernel)) == 1 else kernel
        stride = None if rng.random() < 0.3 else int(rng.integers(1, 4))
        padding = int(rng.integers(0, min(kernel) // 2 + 1))
        size = tuple(int(n) for n in rng.integers(1, _SIZE_LIMITS[dims] + 1, dims))
        x = randn(rng, (batch, int(rng.integers(1, 4))) + size)
        kwargs = dict(kernel_size=kernel_size, stride=stride, padding=padding,
                      ceil_mode=bool(rng.random() < 0.5))
        if kind == "max":
            kwargs["dilation"] = int(rng.choice((1, 1, 2)))
            kwargs["return_indices"] = bool(rng.random() < 0.5)
        else:
            kwargs["count_include_pad"] = bool(rng.random() < 0.5)
            if dims == 3 and rng.random() < 0.3:
                kwargs["divisor_override"] = int(rng.integers(1, 9))
        if kind == "max" and np.min(reference(x, **dict(kwargs, return_indices=True))[1]) < 0:
            # a dilated window wholly in the padding picks no input element (torch's
            # index there is arbitrary)
            raise ValueError("a window lies wholly in the padding")
        if kind == "avg" and dims == 3 and any(n < k for n, k in zip(size, kernel)):
            raise ValueError("torch's avg_pool3d refuses an input smaller than the kernel")
        return (x,), kwargs
    return draw


def _adaptive_draw(dims):
    def draw(rng, batch):
        size = tuple(int(n) for n in rng.integers(1, 11, dims))
        out = tuple(int(rng.integers(1, n + 2)) for n in size)
        return (randn(rng, (batch, int(rng.integers(1, 5))) + size),
                out[0] if dims == 1 or rng.random() < 0.3 else out), {}
    return draw


_ELEMENTWISE_SHAPES = ((1,), (7,), (2, 3, 5, 4), (3, 1000))


def _elementwise_draw(extra=lambda rng: {}):
    def draw(rng, batch):
        shape = _ELEMENTWISE_SHAPES[int(rng.integers(len(_ELEMENTWISE_SHAPES)))]
        x = randn(rng, shape) * 4
        x.flat[0] = 30.0  # saturating values must not overflow
        if x.size > 1:
            x.flat[1] = -30.0
        return (x,), extra(rng)
    return draw


def _linear_draw(rng, batch):
    lead = ((), (batch,), (batch, 3))[int(rng.integers(3))]
    features, out = int(rng.integers(1, 100)), int(rng.integers(1, 12))
    b = randn(rng, (out,)) if rng.random() < 0.7 else None
    return (randn(rng, lead + (features,)), randn(rng, (out, features)), b), {}


def _softmax_draw(rng, batch):
    shape = ((4, 10), (2, 3, 5, 4), (7,), (3, 1))[int(rng.integers(4))]
    return (randn(rng, shape) * 5, int(rng.integers(-len(shape), len(shape)))), {}


def _cross_entropy_draw(rng, batch):
    n, c = batch * int(rng.integers(1, 12)), int(rng.integers(2, 100))
    return (randn(rng, (n, c)) * 3, rng.integers(0, c, n)), {}


# --------------------------------------------------------------------------- gradients

def _conv_grad_args(args, kwargs, g):
    x, w, b = args
    return (g, x, w), dict(kwargs, output_mask=(True, True, b is not None))


def _max_pool_grad_args(reference):
    def grad_args(args, kwargs, g):
        window = {k: v for k, v in kwargs.items() if k != "return_indices"}
        _, indices = reference(args[0], return_indices=True, **window)
        return (g, indices, args[0].shape), window
    return grad_args


def _avg_pool_grad_args(args, kwargs, g):
    return (g, args[0].shape), kwargs


def _adaptive_grad_args(args, kwargs, g):
    return (g, args[0].shape), {}


def _output_grad_args(reference):
    """For gradients computed from the output (activations, softmax)."""
    def grad_args(args, kwargs, g):
        y = np.asarray(reference(*args, **kwargs), dtype=np.float32)
        return (g, y) + tuple(args[1:]), kwargs
    return grad_args


def _linear_grad_args(args, kwargs, g):
    return (g, args[0], args[1]), {}


def _cross_entropy_grad_args(args, kwargs, g):
    return tuple(args), dict(grad_output=float(g))


def _softmax_scale(args, kwargs, expected):
    return np.abs(expected) + np.abs(args[0]) * 1e-2 + 1e-6


def _softmax_grad_scale(args, kwargs, expected):
    g = args[0]
    return np.abs(g).sum() / g.size + np.abs(expected)


def _cross_entropy_grad_scale(args, kwargs, expected):
    return np.full(expected.shape, abs(kwargs["grad_output"]) / expected.shape[0])


# --------------------------------------------------------------------------- bad inputs

def _rank_down(name):
    return lambda a: a[name][0]


def _grown(name, axis):
    """`name`'s array with one more element along `axis`."""
    def value(a):
        shape = list(a[name].shape)
        shape[axis] += 1
        return np.ones(shape, np.float32)
    return value


def _not_contiguous(dims):
    """A (N, C, *spatial) array whose last axis is strided."""
    return np.ones((2, 2) + (8,) * dims, np.float32)[..., ::2]


def _array_bads(dims):
    """Bad values of `input` every op with an array input refuses."""
    return (
        Bad("input", [1.0, 2.0], TypeError,
            "input: expected a numpy.ndarray or pyopencl.array.Array, got list"),
        Bad("input", lambda a: a["input"].astype(np.float64), TypeError,
            r"input: expected dtype float32, got float64; cast with "
            r"input.astype\(numpy.float32\)"),
        Bad("input", lambda a: np.ones((0,) + a["input"].shape[1:], np.float32), ValueError,
            r"input: shape .* has a zero-size dimension"),
        Bad("input", _not_contiguous(dims), ValueError,
            "input: array of shape .* is not C-contiguous"),
    )


def _rank_message(dims):
    """The rank error's regex; the channel axis may be named C, C_in..."""
    layout = _LAYOUTS[dims].replace("(", r"\(").replace(")", r"\)").replace("C,", r"C\w*,")
    return rf"input: expected a {dims + 2}-D array {layout}"


def _window(dims, name, value):
    """`value` of the window argument `name` as a tuple of `dims` ints."""
    return (params.single(name, value),) if dims == 1 else params.ntuple(name, value, dims)


def _conv_bads(dims, transposed):
    out_channels = 1 if transposed else 0
    bads = _array_bads(dims) + (
        Bad("input", _rank_down("input"), ValueError, _rank_message(dims)),
        Bad("weight", _rank_down("weight"), ValueError, f"weight: expected a {dims + 2}-D array"),
        Bad("weight", lambda a: a["weight"].astype(np.int32), TypeError,
            "weight: expected dtype float32, got int32"),
        Bad("weight", _grown("weight", 0 if transposed else 1), ValueError,
            r"weight: expected shape \("),
        Bad("bias", lambda a: np.ones(a["weight"].shape[out_channels]
                                      * (a["groups"] if transposed else 1) + 1, np.float32),
            ValueError, r"bias: expected shape \(\d+,\), got"),
        Bad("stride", 0, ValueError, "stride: expected .*>= 1"),
        Bad("stride", 1.0, TypeError, "stride: expected an int"),
        Bad("dilation", -1, ValueError, "dilation: expected .*>= 1"),
        Bad("dilation", 1.5, TypeError, "dilation: expected an int"),
        Bad("groups", 0, ValueError, "groups: expected .*>= 1"),
        Bad("groups", True, TypeError, "groups: expected an int"),
        Bad("padding", -1, ValueError, "padding: expected values >= 0"),
        Bad("grad_output", _grown("grad_output", -1), ValueError,
            r"grad_output: expected shape \(", grad=True),
        Bad("output_mask", (True, True), ValueError, "output_mask: expected 3 booleans",
            grad=True),
    )
    if dims != 2:
        bads += (Bad("stride", (1, 2), TypeError,
                     rf"stride: expected an int or {_TUPLE_WORDS[dims]} of ints"),)
    if transposed:
        bads += (Bad("output_padding",
                     lambda a: max(_window(dims, "stride", a["stride"])[0], a["dilation"]),
                     ValueError, "output_padding: must be smaller than stride"),
                 Bad("padding", "same", ValueError, "padding: conv_transpose.d takes an int"))
    else:
        bads += (Bad("padding", "full", ValueError,
                     f"padding: expected an int, {_TUPLE_WORDS[dims] if dims > 1 else 'a pair'}"
                     ", 'valid' or 'same'"),)
    return bads


def _pool_bads(dims, kind):
    kernel = lambda a: min(_window(dims, "kernel_size", a["kernel_size"]))
    bads = _array_bads(dims) + (
        Bad("input", _rank_down("input"), ValueError, _rank_message(dims)),
        Bad("kernel_size", 0, ValueError, "kernel_size: expected values >= 1"),
        Bad("kernel_size", 2.5, TypeError, "kernel_size: expected an int"),
        Bad("stride", 0, ValueError, "stride: expected .*>= 1"),
        Bad("padding", -1, ValueError, "padding: expected values >= 0"),
        Bad("padding", lambda a: kernel(a) // 2 + 1, ValueError,
            "padding: must be at most half the kernel size"),
        # max pooling's shapes may be checked against indices first
        Bad("grad_output", _grown("grad_output", -1), ValueError,
            r"(grad_output|indices): expected shape \(", grad=True),
        Bad("input_shape", lambda a: tuple(a["input_shape"])[1:], ValueError,
            f"input_shape: expected {dims + 2} positive ints", grad=True),
    )
    if dims == 1:
        bads += (Bad("kernel_size", (2, 2), TypeError,
                     r"kernel_size: expected an int or a 1-tuple"),)
    if dims == 3:
        bads += (Bad("stride", (1, 2), TypeError, r"stride: expected an int or a triple of ints"),)
    if kind == "max":
        bads += (Bad("dilation", 0, ValueError, "dilation: expected .*>= 1"),
                 Bad("indices", lambda a: np.asarray(a["indices"], np.float32), TypeError,
                     "indices: expected an integer dtype", grad=True),
                 Bad("indices", lambda a: np.full(np.shape(a["indices"]),
                                                  int(np.prod(a["input_shape"][2:])), np.int64),
                     ValueError, r"indices: expected values in \[0, ", grad=True))
    elif dims == 3:
        bads += (Bad("divisor_override", 0, ValueError,
                     "divisor_override: expected an int >= 1, got 0"),
                 Bad("divisor_override", 2.0, TypeError,
                     "divisor_override: expected an int, got 2.0"))
    return bads


def _adaptive_bads(dims):
    return _array_bads(dims) + (
        Bad("output_size", 0, ValueError, "output_size: expected values >= 1"),
        Bad("input_shape", lambda a: tuple(a["input_shape"])[1:], ValueError,
            f"input_shape: expected {dims + 2} positive ints", grad=True),
    )


_ELEMENTWISE_BADS = (
    Bad("input", [1.0, 2.0], TypeError,
        "input: expected a numpy.ndarray or pyopencl.array.Array, got list"),
    Bad("input", lambda a: a["input"].astype(np.float64), TypeError,
        "input: expected dtype float32, got float64"),
)


# --------------------------------------------------------------------------- the table

def _conv(name, dims, transposed, samples):
    module = _REFERENCES[dims]
    op, reference, backward = getattr(F, name), getattr(module, name), getattr(module, f"{name}_backward")
    return Op(name, op, reference, _drawn(_conv_draw(dims, transposed), reference),
              torch=name, scale=abs_scale(reference),
              grad=Grad(getattr(F, f"{name}_backward"), backward,
                        _conv_grad_args, (0, 1, 2), abs_scale(backward)),
              bad=_conv_bads(dims, transposed), samples=samples)


def _pool(name, dims, kind, samples):
    module = _REFERENCES[dims]
    op, reference, backward = getattr(F, name), getattr(module, name), getattr(module, f"{name}_backward")
    grad_args = _max_pool_grad_args(reference) if kind == "max" else _avg_pool_grad_args
    return Op(name, op, reference, _drawn(_pool_draw(dims, kind, reference), reference),
              torch=name,
              scale=None if kind == "max" else abs_scale(reference),
              grad=Grad(getattr(F, f"{name}_backward"), backward, grad_args,
                        scale=abs_scale(backward)),
              bad=_pool_bads(dims, kind), exact=kind == "max", samples=samples)


def _adaptive(name, dims):
    reference, backward = getattr(R, name), getattr(R, f"{name}_backward")
    return Op(name, getattr(F, name), reference, _drawn(_adaptive_draw(dims), reference),
              torch=name, scale=abs_scale(reference),
              grad=Grad(getattr(F, f"{name}_backward"), backward, _adaptive_grad_args,
                        scale=abs_scale(backward)),
              bad=_adaptive_bads(dims), samples=5)


def _activation(name, extra=lambda rng: {}, bad=()):
    reference = getattr(R, name)
    return Op(name, getattr(F, name), reference, _drawn(_elementwise_draw(extra), reference),
              torch=name, scale=relative_scale,
              # a gradient from the float32 output, which torch's from the input is not
              grad=Grad(getattr(F, f"{name}_backward"), getattr(R, f"{name}_backward"),
                        _output_grad_args(reference), (), relative_scale),
              bad=_ELEMENTWISE_BADS + bad, samples=5)


def _softmax(name):
    reference = getattr(R, name)
    return Op(name, getattr(F, name), reference, _drawn(_softmax_draw, reference), torch=name,
              scale=_softmax_scale,
              grad=Grad(getattr(F, f"{name}_backward"), getattr(R, f"{name}_backward"),
                        _output_grad_args(reference), (), _softmax_grad_scale),
              bad=_ELEMENTWISE_BADS + (
                  Bad("dim", lambda a: a["input"].ndim, ValueError,
                      r"dim: expected an axis in \["),
                  Bad("dim", 0.5, TypeError, "dim: expected an int axis")),
              samples=12)


OPS: tuple[Op, ...] = (
    # the 2-D convolutions and pools also run tests/sweeps.py's configurations
    _conv("conv2d", 2, transposed=False, samples=4),
    _conv("conv_transpose2d", 2, transposed=True, samples=4),
    _pool("max_pool2d", 2, "max", samples=4),
    _pool("avg_pool2d", 2, "avg", samples=4),
    _adaptive("adaptive_avg_pool2d", 2),
    _conv("conv1d", 1, transposed=False, samples=16),
    _conv("conv_transpose1d", 1, transposed=True, samples=10),
    _pool("max_pool1d", 1, "max", samples=10),
    _pool("avg_pool1d", 1, "avg", samples=10),
    _adaptive("adaptive_avg_pool1d", 1),
    _conv("conv3d", 3, transposed=False, samples=8),
    _conv("conv_transpose3d", 3, transposed=True, samples=6),
    _pool("max_pool3d", 3, "max", samples=6),
    _pool("avg_pool3d", 3, "avg", samples=8),
    _activation("relu"),
    _activation("leaky_relu", lambda rng: {"negative_slope": float(rng.choice((0.01, 0.2)))},
                bad=(Bad("negative_slope", float("nan"), ValueError,
                         "negative_slope: expected a finite number, got nan"),
                     Bad("negative_slope", -0.5, ValueError,
                         "negative_slope: the gradient from the output needs", grad=True))),
    _activation("sigmoid"),
    _activation("tanh"),
    Op("linear", F.linear, R.linear, _drawn(_linear_draw, R.linear), torch="linear",
       scale=abs_scale(R.linear),
       grad=Grad(F.linear_backward, R.linear_backward, _linear_grad_args, (0, 1, 2),
                 abs_scale(R.linear_backward)),
       bad=_ELEMENTWISE_BADS + (
           Bad("weight", _grown("weight", 1), ValueError,
               r"weight: expected shape \(\d+, \d+\) for input with \d+ features"),),
       samples=5),
    _softmax("softmax"),
    _softmax("log_softmax"),
    Op("cross_entropy", F.cross_entropy, R.cross_entropy,
       _drawn(_cross_entropy_draw, R.cross_entropy), torch="cross_entropy",
       grad=Grad(F.cross_entropy_backward, R.cross_entropy_backward, _cross_entropy_grad_args,
                 scale=_cross_entropy_grad_scale),
       bad=(Bad("target", lambda a: np.full(len(a["target"]), a["input"].shape[1]),
                ValueError, r"target: class indices must be in \[0, \d+\)"),
            Bad("target", lambda a: a["target"].astype(np.float64), TypeError,
                "target: expected an integer dtype"),
            Bad("target", lambda a: np.zeros(len(a["target"]) + 1, np.int64), ValueError,
                r"target: expected shape \(\d+,\), got"),
            Bad("input", lambda a: a["input"].astype(np.float64), TypeError,
                "input: expected dtype float32, got float64")),
       samples=4),
)

BY_NAME: dict[str, Op] = {spec.name: spec for spec in OPS}
