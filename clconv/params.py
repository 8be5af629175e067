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
    "pair",
    "single",
    "conv_padding",
    "conv_output_size",
    "conv_transpose_output_size",
    "pool_output_size",
]


def pair(name: str, value, *, minimum: int | None = None,
         maximum: int = INT32_MAX) -> tuple[int, int]:
    """Return `value` as an (h, w) pair of ints; an int means the same for both.

    Raises TypeError for non-integers and ValueError below `minimum` or above `maximum`
    (by default the kernels' int32 range), naming `name`.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        result = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value
    ):
        result = (int(value[0]), int(value[1]))
    elif isinstance(value, (tuple, list)) and len(value) == 1 and isinstance(
        value[0], numbers.Integral
    ):
        result = (int(value[0]), int(value[0]))
    else:
        raise TypeError(f"{name}: expected an int or a pair of ints, got {value!r}")
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


def check_extent(size: int, padding: int, kernel: int, dilation: int) -> None:
    """Every position a window visits, one dilation step past its end included (where a
    kernel's loop stops), must stay inside the kernels' int32 range: size + padding +
    dilation * kernel <= INT32_MAX. `padding` is all the padding along the axis."""
    if size + padding + dilation * kernel > INT32_MAX:
        raise ValueError(
            f"padding/dilation: input size {size} + padding {padding} + dilation {dilation} "
            f"x kernel {kernel} must be <= {INT32_MAX} (the kernels' int32 range)")


def conv_padding(padding, kernel_size, dilation, stride) -> tuple[tuple[int, int], tuple[int, int]]:
    """Resolve conv2d `padding` to ((top, bottom), (left, right)).

    Accepts an int, a pair, 'valid' or 'same' like torch.  'same' puts the odd extra
    row/column at the bottom/right, as torch does, and needs stride 1.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"padding: 'same' is not supported for strided convolutions, got stride={stride}"
                )
            result = []
            for k, d in zip(kernel_size, dilation):
                total = d * (k - 1)
                result.append((total // 2, total - total // 2))
            return result[0], result[1]
        raise ValueError(f"padding: expected an int, a pair, 'valid' or 'same', got {padding!r}")
    ph, pw = pair("padding", padding, minimum=0)
    return (ph, ph), (pw, pw)


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
