"""Seeded random configurations for the op tests: shapes and parameters across stride,
padding (int, pair, 'valid', 'same'), dilation, groups (depthwise included), odd sizes
and batch > 1. Only configurations the ops accept are kept. Also fixed 3-D cases."""
import dataclasses
import os
import random
from dataclasses import dataclass, field

from clconv import params
from clconv.device import DeviceKind
from clconv.geometry import conv_geometry, pool_geometry, transpose_geometry


def generic_profile(profile):
    """The profile without VC4C's rules (the kind and type of a CPU) where the VideoCore
    IV profile imposes them: for the tests of rules every device shares. VC4C's own
    are tested in test_validate_rejects_what_vc4c_cannot_compile_on_vc4cl_only."""
    if profile.kind != DeviceKind.VC4CL:
        return profile
    return dataclasses.replace(profile, kind=DeviceKind.POCL_CPU, device_type="CPU")


# Fraction of each sweep to run. The emulated Raspberry Pi tiers use a smaller sweep:
# under qemu-user every new OpenCL build (kernel sizes and strides are compile-time
# constants of some variants) takes about 10 s.
SCALE = float(os.environ.get("CLCONV_TEST_SWEEP_SCALE", "1"))


def _scaled(count: int) -> int:
    return max(1, round(count * SCALE))


@dataclass(frozen=True)
class Conv:
    input_shape: tuple
    weight_shape: tuple
    bias: bool
    kwargs: dict = field(hash=False)

    def __str__(self):
        args = ",".join(f"{k}={v}" for k, v in self.kwargs.items())
        return f"x{self.input_shape}-w{self.weight_shape}-b{int(self.bias)}-{args}".replace(" ", "")


def _channels(rng):
    """(in_channels, out_channels, groups), depthwise about one time in six."""
    if rng.random() < 1 / 6:
        c = rng.randint(1, 5)
        return c, c * rng.choice((1, 2)), c
    groups = rng.choice((1, 1, 1, 2, 3))
    return groups * rng.randint(1, 3), groups * rng.randint(1, 3), groups


def conv_configs(count: int, seed: int = 0) -> list[Conv]:
    rng = random.Random(seed)
    configs = []
    count = _scaled(count)
    while len(configs) < count:
        c_in, c_out, groups = _channels(rng)
        kh, kw = rng.randint(1, 4), rng.randint(1, 4)
        stride = rng.choice((1, 1, 2, 3, (1, 2), (2, 1)))
        dilation = rng.choice((1, 1, 1, 2, 3, (2, 1)))
        padding = rng.choice((0, 0, 1, 2, (1, 0), (0, 2), "valid", "same"))
        if padding == "same" and stride != 1:
            padding = 1
        shape = (rng.randint(1, 3), c_in, rng.randint(1, 11), rng.randint(1, 11))
        weight = (c_out, c_in // groups, kh, kw)
        kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        try:
            conv_geometry(shape, weight, **kwargs)
        except ValueError:
            continue
        configs.append(Conv(shape, weight, rng.random() < 0.7, kwargs))
    return configs


def conv_transpose_configs(count: int, seed: int = 0) -> list[Conv]:
    rng = random.Random(seed)
    configs = []
    count = _scaled(count)
    while len(configs) < count:
        c_in, c_out, groups = _channels(rng)
        kh, kw = rng.randint(1, 4), rng.randint(1, 4)
        stride = rng.choice((1, 2, 3, (1, 2)))
        dilation = rng.choice((1, 1, 2))
        padding = rng.choice((0, 1, 2, (1, 0)))
        s, d = params.pair("s", stride), params.pair("d", dilation)
        output_padding = tuple(rng.randint(0, max(a, b) - 1) for a, b in zip(s, d))
        shape = (rng.randint(1, 3), c_in, rng.randint(1, 8), rng.randint(1, 8))
        weight = (c_in, c_out // groups, kh, kw)
        kwargs = dict(stride=stride, padding=padding, output_padding=output_padding,
                      groups=groups, dilation=dilation)
        try:
            transpose_geometry(shape, weight, **kwargs)
        except ValueError:
            continue
        configs.append(Conv(shape, weight, rng.random() < 0.7, kwargs))
    return configs


@dataclass(frozen=True)
class Pool:
    input_shape: tuple
    kwargs: dict = field(hash=False)

    def __str__(self):
        args = ",".join(f"{k}={v}" for k, v in self.kwargs.items())
        return f"x{self.input_shape}-{args}".replace(" ", "")


def pool_configs(count: int, seed: int = 0, max_pool: bool = True) -> list[Pool]:
    rng = random.Random(seed)
    configs = []
    count = _scaled(count)
    while len(configs) < count:
        kernel = rng.choice((1, 2, 3, 4, (2, 3), (3, 1)))
        k = params.pair("k", kernel)
        stride = rng.choice((None, 1, 2, 3, (2, 1)))
        padding = (rng.randint(0, k[0] // 2), rng.randint(0, k[1] // 2))
        ceil_mode = rng.random() < 0.5
        shape = (rng.randint(1, 3), rng.randint(1, 3), rng.randint(1, 12), rng.randint(1, 12))
        kwargs = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode)
        dilation = 1
        if max_pool:
            dilation = rng.choice((1, 1, 2, (1, 2)))
            kwargs["dilation"] = dilation
        else:
            kwargs["count_include_pad"] = rng.random() < 0.5
        try:
            pool_geometry(shape, kernel, stride, padding, dilation, ceil_mode)
        except ValueError:
            continue
        configs.append(Pool(shape, kwargs))
    return configs


# Fixed 3-D cases beside the op table's random samples (test_ops, test_edge_values): per-axis strides, padding and
# dilation, 'same' and 'valid', groups, depthwise, 1x1x1 kernels, divisor_override.
CONV3D = [  # (input, weight, kwargs)
    ((2, 4, 5, 6, 7), (6, 2, 3, 2, 3), dict(stride=(1, 2, 1), padding=(1, 0, 2),
                                            dilation=(1, 1, 2), groups=2)),
    ((1, 3, 6, 5, 8), (4, 3, 3, 3, 3), dict(padding="same", dilation=(2, 1, 1))),
    ((2, 3, 7, 6, 5), (5, 3, 2, 3, 1), dict(stride=2, padding="valid")),
    ((2, 5, 3, 4, 6), (7, 5, 1, 1, 1), dict()),  # 1x1x1: the input is the column matrix
    ((1, 6, 4, 5, 5), (6, 1, 3, 3, 3), dict(stride=(2, 1, 3), padding=1, groups=6)),
]
CONV_TRANSPOSE3D = [
    ((2, 4, 3, 4, 5), (4, 3, 3, 2, 3), dict(stride=(2, 1, 3), padding=(1, 0, 2),
                                            output_padding=(1, 0, 1), dilation=(1, 2, 1),
                                            groups=2)),
    ((1, 3, 4, 3, 4), (3, 5, 2, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((2, 4, 3, 3, 3), (4, 3, 1, 1, 1), dict()),
    # output_padding >= stride (under a larger dilation): the output has extra positions
    ((1, 3, 3, 4, 3), (3, 1, 4, 2, 4), dict(padding=1, output_padding=1, dilation=2)),
]
POOL3D_INPUT = (2, 3, 7, 8, 9)
MAX_POOL3D = [
    dict(kernel_size=(3, 2, 3), stride=(2, 1, 2), padding=(1, 1, 0), dilation=(1, 2, 1),
         ceil_mode=True),
    dict(kernel_size=2),
    dict(kernel_size=(2, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
]
AVG_POOL3D = [
    dict(kernel_size=(3, 2, 3), stride=(2, 1, 2), padding=(1, 1, 0), ceil_mode=True),
    dict(kernel_size=(3, 2, 3), stride=(2, 1, 2), padding=(1, 1, 0), ceil_mode=True,
         count_include_pad=False),
    dict(kernel_size=2, divisor_override=5),
    dict(kernel_size=(2, 3, 3), stride=(1, 2, 2), padding=(1, 1, 1), count_include_pad=False,
         divisor_override=3),
]
