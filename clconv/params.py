"""Normalise op parameters the way torch.nn.functional does, and compute output sizes.

Pure Python, shared by the OpenCL ops (`functional.py`) and the numpy oracle
(`reference.py`) so that both read arguments identically.
"""
from __future__ import annotations

import math
import numbers

# Kernels index with 32-bit ints: every size, stride, padding and element count must fit.
INT32_MAX = 2**31 - 1

__all__ = [
    "INT32_MAX",
    "ntuple",
    "pair",
    "single",
    "triple",
    "conv_padding",
    "conv_output_size",
    "conv_transpose_output_size",
    "pool_output_size",
]


_TUPLE_NAMES = {1: "a 1-tuple", 2: "a pair", 3: "a triple"}


def tuple_name(n: int) -> str:
    """'a pair' for 2, 'a triple' for 3: how messages name an n-tuple."""
    return _TUPLE_NAMES.get(n, f"a {n}-tuple")


def ntuple(name: str, value, n: int, *, minimum: int | None = None,
           maximum: int = INT32_MAX) -> tuple[int, ...]:
    """Return `value` as a tuple of `n` ints (one per spatial axis); an int, or a
    1-element sequence, means the same for all.

    Raises TypeError for non-integers and ValueError below `minimum` or above `maximum`
    (by default the kernels' int32 range), naming `name`.
    """
    def is_int(v):
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    if is_int(value):
        result = (int(value),) * n
    elif isinstance(value, (tuple, list)) and len(value) == n and all(map(is_int, value)):
        result = tuple(int(v) for v in value)
    elif isinstance(value, (tuple, list)) and len(value) == 1 and is_int(value[0]):
        result = (int(value[0]),) * n
    else:
        raise TypeError(f"{name}: expected an int or {tuple_name(n)} "
                        f"of ints, got {value!r}")
    if minimum is not None and min(result) < minimum:
        raise ValueError(f"{name}: expected values >= {minimum}, got {value!r}")
    if max(result) > maximum:
        raise ValueError(f"{name}: expected values <= {maximum} (the kernels' int32 range), "
                         f"got {value!r}")
    return result


def single(name: str, value, *, minimum: int | None = None, maximum: int = INT32_MAX) -> int:
    """Return `value`, an int or a 1-tuple of ints as torch's 1-D ops take, as an int;
    the same TypeError / ValueError rules as `pair`."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        item = value[0]
    elif isinstance(value, (tuple, list)):
        raise TypeError(f"{name}: expected an int or a 1-tuple of ints, got {value!r}")
    else:
        item = value
    if not isinstance(item, numbers.Integral) or isinstance(item, bool):
        raise TypeError(f"{name}: expected an int or a 1-tuple of ints, got {value!r}")
    return pair(name, int(item), minimum=minimum, maximum=maximum)[0]


def pair(name: str, value, *, minimum: int | None = None,
         maximum: int = INT32_MAX) -> tuple[int, int]:
    """Return `value` as an (h, w) pair of ints; an int means the same for both."""
    return ntuple(name, value, 2, minimum=minimum, maximum=maximum)


def triple(name: str, value, *, minimum: int | None = None,
           maximum: int = INT32_MAX) -> tuple[int, int, int]:
    """Return `value` as a (d, h, w) triple of ints; an int means the same for all."""
    return ntuple(name, value, 3, minimum=minimum, maximum=maximum)


def check_extent(size: int, padding: int, kernel: int, dilation: int) -> None:
    """Every position a window visits, one dilation step past its end included (where a
    kernel's loop stops), must stay inside the kernels' int32 range: size + padding +
    dilation * kernel <= INT32_MAX. `padding` is all the padding along the axis."""
    if size + padding + dilation * kernel > INT32_MAX:
        raise ValueError(
            f"padding/dilation: input size {size} + padding {padding} + dilation {dilation} "
            f"x kernel {kernel} must be <= {INT32_MAX} (the kernels' int32 range)")


def conv_padding(padding, kernel_size, dilation, stride) -> tuple[tuple[int, int], ...]:
    """Resolve conv `padding` to one (begin, end) pair per spatial axis of `kernel_size`,
    e.g. ((top, bottom), (left, right)) for conv2d.

    Accepts an int, a tuple, 'valid' or 'same' like torch.  'same' puts the odd extra
    row/column at the end (bottom/right), as torch does, and needs stride 1.
    """
    n = len(kernel_size)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(
                    f"padding: 'same' is not supported for strided convolutions, got stride={stride}"
                )
            result = []
            for k, d in zip(kernel_size, dilation):
                total = d * (k - 1)
                result.append((total // 2, total - total // 2))
            return tuple(result)
        raise ValueError(f"padding: expected an int, {tuple_name(n)}, "
                         f"'valid' or 'same', got {padding!r}")
    return tuple((p, p) for p in ntuple("padding", padding, n, minimum=0))


def conv_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int,
                     dilation: int) -> int:
    """floor((H + pads - d*(k-1) - 1) / s) + 1; may be <= 0 when the kernel does not fit."""
    check_extent(size, pad_begin + pad_end, kernel, dilation)
    return (size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1


def conv_transpose_output_size(size: int, kernel: int, stride: int, padding: int,
                               output_padding: int, dilation: int) -> int:
    """(H - 1)*s - 2p + d*(k-1) + output_padding + 1, as torch's conv_transpose2d."""
    check_extent((size - 1) * stride + output_padding, 0, kernel, dilation)
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int,
                     ceil_mode: bool, pad_end: int | None = None) -> int:
    """Pooling output size with torch's ceil_mode rule; `padding` before the input and
    `pad_end` (default: `padding`) after it (ONNX pads may be asymmetric).

    In ceil mode the last window must start inside the input or the left padding;
    a window that would start in the right padding is dropped.
    """
    pad_end = padding if pad_end is None else pad_end
    check_extent(size, padding + pad_end, kernel, dilation)
    span = size + padding + pad_end - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + padding:
            out -= 1
    else:
        out = span // stride + 1
    return out


def adaptive_bounds(index: int, in_size: int, out_size: int) -> tuple[int, int]:
    """[start, end) of adaptive pooling window `index`, as torch computes it."""
    start = (index * in_size) // out_size
    end = -(-((index + 1) * in_size) // out_size)
    return start, end


def is_finite_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
