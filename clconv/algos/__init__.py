"""Convolution variants and how one is chosen for a layer.

Order of choice for an op on a geometry:
1. `CLCONV_ALGO=name` (or `force(name)`) forces a variant wherever it is valid; a name
   that is not a variant is an error listing the valid names;
2. the variant `clconv tune` stored for this layer and device, if still valid;
3. a deterministic heuristic (`heuristic`).
Tunables come from the tuning database, else the shipped defaults for the device kind /
type (`tuning_defaults.json`), else the variant's own defaults, clamped to the device.
Choices are memoised per (device, layer, op), so repeated calls do no lookup work.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from .. import caches, tuning
from .base import OPS, Variant, is_cpu
from .channels import CHANNELS
from .channels import forward_max_pool as channels_forward_max_pool
from .channels import max_pool_reason as channels_max_pool_reason
from .depthwise import DEPTHWISE, is_depthwise
from .depthwise_direct import DEPTHWISE_DIRECT
from .direct import DIRECT
from .gemm import GEMM_1X1, IM2COL, is_memory_bound, is_pointwise
from .gemm import reads_input_affine as gemm_reads_input_affine
from .linear import LINEAR, is_fully_connected
from .shifted import SHIFTED
from .winograd import WINOGRAD, pays as winograd_pays, tiling as winograd_tiling

ENV_ALGO = "CLCONV_ALGO"
# the variants whose GEMM writes the output itself, one image and one row at a time:
# they write strided images (a slice of a concatenation) and inside zero-bordered planes
# in place (PackedForward.writes_strided_output, writes_bordered_output)
OUTPUT_WRITERS = (GEMM_1X1, IM2COL, SHIFTED, CHANNELS)
# linear's GEMM reads and writes whole images as its rows: strided images in place, but
# no bordered planes (an output pixel's channels are then not one row of C)
STRIDED_IMAGE_WRITERS = OUTPUT_WRITERS + (LINEAR,)
STRIDED_IMAGE_READERS = (GEMM_1X1, LINEAR)
# the variants that read an input zero-bordered by their padding as it lies, as the same
# convolution without padding (onnx/borders.py): no padding pass of their own
BORDER_READERS = (SHIFTED, CHANNELS)

VARIANTS: dict[str, Variant] = {v.name: v for v in (DIRECT, IM2COL, GEMM_1X1, DEPTHWISE,
                                                    DEPTHWISE_DIRECT, WINOGRAD, SHIFTED,
                                                    CHANNELS, LINEAR)}

_forced: str | None = None
_memo: dict = caches.memo("algos.choices")


class UnknownAlgorithmError(ValueError):
    pass


def check_name(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise UnknownAlgorithmError(
            f"{ENV_ALGO}: unknown convolution algorithm {name!r}; valid names: "
            f"{', '.join(VARIANTS)}") from None


def forced_name() -> str | None:
    if _forced is not None:
        return _forced
    return os.environ.get(ENV_ALGO, "").strip() or None


@contextlib.contextmanager
def force(name: str | None):
    """Within the block, ops use variant `name` wherever it is valid (like CLCONV_ALGO)."""
    global _forced
    if name is not None:
        check_name(name)
    previous, _forced = _forced, name
    try:
        yield
    finally:
        _forced = previous


def params_for(profile, variant: Variant, geo, op: str, use: str | None = None) -> dict:
    """Untuned tunables: shipped defaults for the device (with their overrides for `use`,
    e.g. INPUT_AFFINE), else the variant's, fitted to the layer (Variant.fit) and
    clamped to the device."""
    params = tuning.default_params(profile, variant.name, op, use)
    if params is None:
        params = variant.defaults(profile, geo, op)
    params = dict(params)
    if variant.fit is not None:
        params = variant.fit(geo, op, params)
    if "WG" in params:
        params["WG"] = max(1, min(int(params["WG"]), profile.max_work_group_size))
    return params


def valid(profile, variant: Variant, geo, op: str, params: dict) -> bool:
    return op in variant.ops and variant.validate(profile, geo, op, params) is None


def heuristic(profile, geo, op: str, packed: bool = False) -> str:
    """The untuned choice; deterministic, from the geometry and the device type, and for
    a forward whether its weights are packed once (pack_forward)."""
    if is_depthwise(geo):  # groups == in_channels, single-channel inputs included
        # a local size of 1 suits CPUs only (see depthwise_direct)
        if is_cpu(profile) and valid(profile, DEPTHWISE_DIRECT, geo, op,
                                     params_for(profile, DEPTHWISE_DIRECT, geo, op)):
            return "depthwise_direct"
        return "depthwise"
    cg = geo.C // geo.groups
    kg = geo.K // geo.groups
    if cg * geo.kh * geo.kw < 4 and kg < 4:
        return "direct"  # too little work per GEMM to pay for the layout passes
    if is_pointwise(geo):
        # a fully connected layer: its weights, packed once, as the GEMM's columns
        return "linear" if packed and is_fully_connected(geo) else "gemm1x1"
    if winograd_pays(geo, op, packed,
                     winograd_tiling(params_for(profile, WINOGRAD, geo, op))):
        return "winograd"
    # neither writes a column matrix to read back; their weights are reordered once, so
    # only where they are packed: the channels in the vector lanes on CPUs (any stride,
    # one group: algos/channels.py), else stride 1 as shifted views (algos/shifted.py)
    if packed and valid(profile, CHANNELS, geo, op, params_for(profile, CHANNELS, geo, op)):
        return "channels"
    if packed and is_cpu(profile) and valid(profile, SHIFTED, geo, op,
                                             params_for(profile, SHIFTED, geo, op)):
        return "shifted"
    return "im2col"


def choose(profile, geo, op: str, packed: bool = False):
    """(variant, params, how) for `op` on `geo`; `how` says why (forced/tuned/heuristic).
    `packed`: the weights will be packed once (pack_forward), which the heuristic weighs."""
    if op not in OPS:
        raise ValueError(f"op: expected one of {OPS}, got {op!r}")
    forced = forced_name()
    memo_key = (profile, geo, op, packed, forced, tuning.generation,
                os.environ.get(tuning.ENV_DIR, ""))
    hit = _memo.get(memo_key)
    if hit is not None:
        return hit
    result = None
    if forced is not None:
        variant = check_name(forced)
        params = params_for(profile, variant, geo, op)
        tuned = tuning.lookup(profile, geo, op)
        if tuned is not None and tuned[0] == forced:
            params = tuned[1]
        if valid(profile, variant, geo, op, params):
            result = (variant, params, "forced")
    if result is None:
        tuned = tuning.lookup(profile, geo, op)
        if tuned is not None and tuned[0] in VARIANTS:
            variant = VARIANTS[tuned[0]]
            if valid(profile, variant, geo, op, tuned[1]):
                result = (variant, tuned[1], "tuned")
    if result is None:
        variant = VARIANTS[heuristic(profile, geo, op, packed)]
        params = params_for(profile, variant, geo, op)
        if not valid(profile, variant, geo, op, params):
            variant, params = DIRECT, {}
        result = (variant, params, "heuristic")
    _memo[memo_key] = result
    return result


def valid_variants(profile, geo, op: str):
    """[(variant, params)] for every variant that can run `op` on `geo` (default tunables)."""
    out = []
    for variant in VARIANTS.values():
        params = params_for(profile, variant, geo, op)
        if valid(profile, variant, geo, op, params):
            out.append((variant, params))
    return out


def run(rt, op: str, geo, *args, variant: Variant | None = None, params: dict | None = None,
        **kwargs):
    """Enqueue `op` with the chosen (or given) variant."""
    if variant is None:
        variant, params, _ = choose(rt.profile, geo, op)
    return variant.run[op](rt, geo, params or {}, *args, **kwargs)


@dataclass(frozen=True)
class PackedForward:
    """A forward convolution whose weights do not change (inference): the variant and
    tunables chosen once, and the weights in the layout that variant reads, made once
    (`Variant.pack`; None where the variant reads the weights as they are)."""

    variant: Variant
    params: dict
    packed: object

    def run(self, rt, geo, x, w, bias, out, act, **fused):
        """`fused`: input_affine, where reads_input_affine says the variant takes it;
        x_image and out_image, the image strides of an input or output that is strided
        images (arrays.image_stride), where reads_strided_input and
        writes_strided_output say it takes them; out_border, the border of zero-bordered
        output planes, where writes_bordered_output says so."""
        packed = {} if self.packed is None else {"packed": self.packed}
        return run(rt, "forward", geo, x, w, bias, out, variant=self.variant,
                   params=self.params, act=act, **packed, **fused)

    def reads_input_affine(self, geo) -> bool:
        """Whether run() applies an input_affine as it loads the input (gemm1x1)."""
        return self.variant is GEMM_1X1 and gemm_reads_input_affine(geo)

    def reads_strided_input(self) -> bool:
        """Whether run() reads an input of strided images in place: gemm1x1 and linear,
        whose GEMM reads the input itself, one image at a time."""
        return self.variant in STRIDED_IMAGE_READERS

    def writes_strided_output(self) -> bool:
        """Whether run() writes an output of strided images in place: the variants whose
        GEMM writes the output, one image at a time."""
        return self.variant in STRIDED_IMAGE_WRITERS

    def max_pool_reason(self, profile, geo, pool) -> str | None:
        """Why run_max_pool cannot run `geo` and then the max pool `pool` (a PoolGeometry
        over its output) in one launch, or None: the channels variant fuses the pool
        (algos/channels.py forward_max_pool)."""
        if self.variant is not CHANNELS:
            return f"the {self.variant.name} variant writes the convolution's whole output"
        return channels_max_pool_reason(profile, geo, pool)

    def run_max_pool(self, rt, geo, x, w, bias, out, act, pool):
        """The convolution and the max pool `pool` over its output, into `out`, in one
        launch (where max_pool_reason says so)."""
        return channels_forward_max_pool(rt, geo, self.params, x, w, bias, out, act, pool,
                                         packed=self.packed)

    def writes_bordered_output(self) -> bool:
        """Whether run() writes inside zero-bordered output planes in place (out_border,
        arrays.bordered_planes): the variants whose GEMM writes the output, row by row."""
        return self.variant in OUTPUT_WRITERS


# tuning_defaults.json's overrides for a forward that applies an input batch norm as its
# GEMM loads the input (gemm.cl B_AFFINE): a taller tile shares each transformed row
INPUT_AFFINE = "input_affine"
# ... and for an im2col forward whose GEMM sums few terms (C/groups * kh * kw at most
# SHORT_K_MAX: a network's stem, 3 channels times the window), where storing the tile
# and writing the column panels weigh more than the multiply-adds (docs/performance.md,
# session 16: on AVX-512 a 4 x 64 tile took ResNet-50's 7x7 stem 2.0-2.3 -> 1.6 ms)
SHORT_K = "short_k"
SHORT_K_MAX = 384
# ... and for a pointwise forward that moves more bytes than it computes on
# (gemm.is_memory_bound) and reads at least as much as it writes (K <= C), on few enough
# input channels that a 64-column panel of them stays in a 48 KB L1 cache (C <=
# MEMORY_BOUND_MAX_C). With the caches emptied by another runtime's run (bench-model),
# AVX-512's 2 x 64 tile, whose work-items write four cache lines of each output row, took
# SqueezeNet's 55x55 squeeze and 1x1 expand layers 0.54 -> 0.42 ms together
# (docs/performance.md, session 25); on Inception-v1's 192 -> 16 (28x28) and 480 -> 16
# (14x14) layers it was slower. Layers that write more than they read (the expands) keep
# the class's tile and write long runs of each output row instead (gemm.fit_columns,
# session 26: fire2's 16 -> 64 expand 0.14 -> 0.07 ms).
MEMORY_BOUND = "memory_bound"
MEMORY_BOUND_MAX_C = 128


def reads_more_than_it_writes(geo) -> bool:
    """A memory-bound pointwise forward whose input outweighs its output: C >= K."""
    c, k = geo.C // geo.groups, geo.K // geo.groups
    return c >= k and is_memory_bound(k, c)


def forward_use(variant: Variant, geo, input_affine: bool) -> str | None:
    """The use of a packed forward whose untuned tunables have their own overrides in
    tuning_defaults.json (INPUT_AFFINE, SHORT_K, MEMORY_BOUND), or None."""
    if input_affine and variant is GEMM_1X1 and gemm_reads_input_affine(geo):
        return INPUT_AFFINE
    if variant is IM2COL and (geo.C // geo.groups) * geo.kh * geo.kw <= SHORT_K_MAX:
        return SHORT_K
    if variant is GEMM_1X1 and geo.C // geo.groups <= MEMORY_BOUND_MAX_C \
            and reads_more_than_it_writes(geo):
        return MEMORY_BOUND
    return None


def pack_forward(rt, geo, w, input_affine: bool = False) -> PackedForward:
    """Choose the forward variant for `geo` now and pack the weights `w` it will read.
    input_affine: the layer will be run with an input_affine (PackedForward.run). Where
    forward_use names a use (the variant applies the input_affine in its GEMM, or sums
    few terms), the untuned tunables are those for that use."""
    variant, params, how = choose(rt.profile, geo, "forward", packed=True)
    use = forward_use(variant, geo, input_affine)
    if use is not None and how != "tuned":
        fitted = params_for(rt.profile, variant, geo, "forward", use)
        if valid(rt.profile, variant, geo, "forward", fitted):
            params = fitted
    packed = variant.pack(rt, geo, params, w) if variant.pack is not None else None
    return PackedForward(variant, params, packed)


def clear_memo():
    _memo.clear()
