"""Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution: 3x3, stride 1, no dilation, one
group. Forward, and grad_input as the forward of the output gradient with flipped weights.

Weights and input tiles are transformed into 16 (F(2x2)) or 36 (F(4x4), CPUs only: the
tunable WM=4) matrices each, multiplied by that many GEMMs (the `gemm.cl` kernel, with
the GEMM variants' tunables) and transformed back, bias and the activation fused: 2.25
or 4 times fewer multiply-adds than the direct product, paid for with three extra passes
over memory. The weights are transformed on every call, as they change
during training, unless the caller packed them once (`pack`, for inference).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..build import get_kernel, launch_grid
from ..epilogue import NO_ACTIVATION
from ..geometry import grad_input_as_forward
from .base import Variant, flip_weights, is_cpu, layout_group, pad, round_up, scratch
from .gemm import TEST_PARAMS, space as gemm_space, weights_first
from .tiled_gemm import defaults as gemm_defaults, gemm, pack_a, tile_n, validate_params


def applies(geo) -> bool:
    return (geo.kh == geo.kw == 3 and geo.stride == (1, 1) and geo.dilation == (1, 1)
            and geo.groups == 1)


@dataclass(frozen=True)
class Tiling:
    """F(m x m, 3x3): its tile size and kernels."""

    m: int          # outputs per tile side
    kernels: str    # the kernel file
    prefix: str     # its kernels' names: prefix + "_weights", "_input", "_output"

    @property
    def matrices(self) -> int:
        """Input tile positions: (m + 2)^2 GEMMs."""
        return (self.m + 2) ** 2


TILINGS = {2: Tiling(2, "winograd.cl", "winograd"),
           4: Tiling(4, "winograd4.cl", "winograd4")}
TILES_PER_ITEM = 8  # neighbouring tiles a transform work-item takes, as float8 vectors
# Floats between one transformed matrix of U, V or M and the next beyond its K*C, C*ldt
# or K*ldt: with those a multiple of 4 KB, a transform work-item's 16-36 loads or stores,
# one per matrix, all fell in one set of the L1 cache (F(4x4)'s weight transform of
# ResNet-18's 128-channel layer: 0.31 ms unskewed, 0.24 skewed; session 28).
SKEW = 16


def reads_unpadded(profile, tile: Tiling) -> bool:
    """Whether the transforms read the input as it is, zeros outside it (WINOGRAD_UNPADDED:
    winograd4.cl, and winograd.cl on CPUs), rather than a zero-bordered copy covering
    every tile made first (winograd.cl on GPUs: VC4C's build keeps its bound-free loads).
    The copies took DenseNet-121 18 launches and 1.0 ms of its 21 ms of kernels."""
    return tile.m == 4 or is_cpu(profile)


def tiling(params) -> Tiling:
    """The tunable WM (outputs per tile side, 2 unless set) as its Tiling."""
    return TILINGS[int(params.get("WM", 2))]


def _tiles(geo, tile: Tiling = TILINGS[2]):
    """(tiles_h, tiles_w, T): m x m output blocks down, across (rounded up to the tiles a
    transform work-item takes), and in all images."""
    th = -(-geo.Ho // tile.m)
    tw = round_up(-(-geo.Wo // tile.m), TILES_PER_ITEM)
    return th, tw, geo.N * th * tw


def _convolution_run(geo, op: str):
    """The forward convolution `op` runs: geo itself, or for grad_input the convolution
    of the output gradient with the flipped weights."""
    return geo if op == "forward" else grad_input_as_forward(geo)


def pays(geo, op: str, packed: bool = False, tile: Tiling = TILINGS[2]) -> bool:
    """Where Winograd with `tile` (the tiling its untuned tunables give, see fit) beat
    the GEMM variants on POCL: enough channels that the GEMMs dominate the three
    transform passes, enough tiles for the GEMMs to run well (ResNet-18 3x3 at 28 and
    the VGG layer, not at 56 with 64 channels or at 14/7). grad_input is judged by the
    flipped convolution it runs. With the weights `packed` once (an inference forward),
    no call transforms them, and it paid from fewer tiles: ResNet-50's 256-channel 3x3 at
    14x14 (56 tiles) 1.9x im2col, its 512-channel one at 7x7 (32 tiles) 0.9x (POCL,
    AVX-512, batch 1), and from fewer channels: against the shifted GEMM, Inception-v1's
    96 -> 128 at 28x28 0.77-0.84x, 96 -> 208 at 14x14 0.93x, but 64 -> 64 at 56x56 1.12x
    and SqueezeNet's 64 -> 256 at 13x13 1.00x (session 16, Zen 4). F(4x4) tiles (fit)
    pay from 32 channels: against the shifted GEMM, 64 -> 64 at 56x56 0.67x, 64 -> 192
    at 56x56 0.57-0.63x, DenseNet's 128 -> 32 at 56x56 0.74x and at 28x28 0.89x, 32 -> 128
    at 27x27 0.93x, but SqueezeNet's 16 -> 64 at 55x55 1.22x (session 17, Zen 4); one
    rule with packed weights or without (ResNet-18's 64 -> 64 at 56x56 in training: 1.3x
    PyTorch's forward, from 0.9x with im2col)."""
    if op not in ("forward", "grad_input") or not applies(geo):
        return False
    conv = _convolution_run(geo, op)
    if tile.m == 4:
        return _f4_pays(conv)
    _, _, tiles = _tiles(conv)
    if packed and op == "forward":
        return min(conv.C, conv.K) >= PACKED_MIN_CHANNELS and tiles >= PACKED_MIN_TILES
    return min(conv.C, conv.K) >= MIN_CHANNELS and tiles >= MIN_TILES


MIN_CHANNELS, MIN_TILES = 128, 128
PACKED_MIN_CHANNELS, PACKED_MIN_TILES = 96, 48
F4_MIN_CHANNELS, F4_MIN_TILES = 32, 48


def _f4_pays(conv) -> bool:
    return min(conv.C, conv.K) >= F4_MIN_CHANNELS and \
        _tiles(conv, TILINGS[4])[2] >= F4_MIN_TILES


def fit(geo, op, params):
    """F(4x4) tiles (WM=4, CPUs' default) only where they have the tiles to fill their
    GEMMs and the channels to pay for their transforms: 48 tiles (28x28 outputs and up
    at batch 1; at 14x14, 32 tiles with the rows rounded to 8, F(4x4) took ResNet-50's
    256-channel layer 0.83x the shifted GEMM's time against F(2x2)'s 0.69x, at 7x7 2.2x,
    SqueezeNet's 64 -> 256 at 13x13 1.21x) and 32 channels (see pays); elsewhere F(2x2)
    (session 17, Zen 4). A forward's GEMMs take their loop order from their shape
    (gemm.weights_first, the tiles as columns)."""
    if int(params.get("WM", 2)) == 4 and applies(geo) and \
            not _f4_pays(_convolution_run(geo, op)):
        params = dict(params, WM=2)
    if op == "forward":  # the GEMMs' columns are the tiles
        params = weights_first(params, geo.K, _tiles(geo, tiling(params))[2])
    return params


def validate(profile, geo, op, params):
    if not applies(geo):
        return "only 3x3 convolutions with stride 1, no dilation and one group"
    if op == "grad_input" and not (0 <= geo.pad_top <= 2 and 0 <= geo.pad_left <= 2):
        return "grad_input needs padding 0..2 (the flipped convolution pads by 2 - padding)"
    m = int(params.get("WM", 2))
    if m not in TILINGS:
        return f"WM={m}: outputs per tile side must be one of {sorted(TILINGS)}"
    if m != 2 and not is_cpu(profile):
        return f"WM={m}: F(4x4, 3x3) is built for CPUs only (winograd4.cl)"
    reason = validate_params(profile, params)
    if reason is not None:
        return reason
    conv = _convolution_run(geo, op)
    tile = tiling(params)
    _, _, T = _tiles(conv, tile)
    ldt = round_up(T, tile_n(params))
    # the largest buffer: weights (n, K, C), input tiles (n, C, ldt), products (n, K, ldt)
    nbytes = 4 * tile.matrices * (max(conv.K * conv.C, conv.C * ldt, conv.K * ldt) + SKEW)
    if nbytes > profile.max_mem_alloc_size:
        return (f"a transform buffer of {nbytes} bytes exceeds the device's max allocation "
                f"{profile.max_mem_alloc_size}")
    return None


def _defines(rt, tile: Tiling) -> dict:
    return {"WINOGRAD_UNPADDED": 1} if reads_unpadded(rt.profile, tile) else {}


def _transform_weights(rt, geo, tile: Tiling, w, skew=SKEW):
    """The weights' transformed (K, C) matrices U, one per tile position, K*C + skew
    floats apart (skew 0: one contiguous array)."""
    K, C = geo.K, geo.C
    plane, groups = K * C + skew, -(-C // 8)
    U = scratch(rt, (tile.matrices * plane,))
    # work-groups along the channels: a group's work-items store whole cache lines of
    # each matrix together, where half lines from two threads took 0.24 -> 0.10 ms
    launch_grid(rt, get_kernel(rt, tile.kernels, tile.prefix + "_weights",
                               _defines(rt, tile)), (groups, K),
                (layout_group(rt, groups), 1), w, U, K, C, plane)
    return U, plane


def pack(rt, geo, params, w):
    """U in the GEMM's panels of TM rows (tiled_gemm.pack_a), as forward reads it given
    `packed`: transformed and packed once."""
    tile = tiling(params)
    return pack_a(rt, params, _transform_weights(rt, geo, tile, w, skew=0)[0],
                  tile.matrices, geo.K, geo.C)


def forward(rt, geo, params, x, w, bias, out, act=NO_ACTIVATION, packed=None):
    """`packed`: pack()'s result for these weights, or None to transform them here."""
    K, C = geo.K, geo.C
    tile = tiling(params)
    th, tw, T = _tiles(geo, tile)
    ldt = round_up(T, tile_n(params))
    defines = _defines(rt, tile)
    if defines:  # WINOGRAD_UNPADDED: the input itself, where the tiles start in it
        source, extent = x, (geo.H, geo.W, geo.pad_top, geo.pad_left)
        input_extent = extent + (x.size,)
    else:
        # zero-bordered input covering every tile and the input transform's vector
        # loads (2 and 4 floats past the last tile's): no bounds tests there
        extent = input_extent = (tile.m * th + 2, tile.m * tw + tile.m)
        source = pad(rt, x, geo.N * C, geo.H, geo.W, *extent, geo.pad_top, geo.pad_left,
                     int(params["WG"]))
    if packed is None:
        a, sa = _transform_weights(rt, geo, tile, w)
        lda = C
    else:
        a, lda, sa = packed
    v_plane, m_plane = C * ldt + SKEW, K * ldt + SKEW
    V = scratch(rt, (tile.matrices * v_plane,))
    M = scratch(rt, (tile.matrices * m_plane,))
    tile_grid = (tw // TILES_PER_ITEM, th)  # TILES_PER_ITEM across per work-item, a row down
    launch_grid(rt, get_kernel(rt, tile.kernels, tile.prefix + "_input", defines),
                tile_grid + (geo.N * C,), (1, layout_group(rt, th), 1),
                source, V, C, *input_extent, th, tw, ldt, v_plane)
    gemm(rt, params, K, T, C, 1,
         a, lda, (sa, 0, 0),
         V, ldt, (v_plane, 0, 0),
         M, ldt, (m_plane, 0),
         tile.matrices, 1, a_packed=packed is not None)
    launch_grid(rt, get_kernel(rt, tile.kernels, tile.prefix + "_output",
                               dict(act.defines, **defines)),
                tile_grid + (geo.N * K,), (1, layout_group(rt, th), 1),
                M, bias if bias is not None else M, bias is not None,
                out, K, geo.Ho, geo.Wo, th, tw, ldt, m_plane, source, w, C, *extent,
                *act.scalars)
    return out


def grad_input(rt, geo, params, grad_out, w, out, bias=None):
    return forward(rt, grad_input_as_forward(geo), params, grad_out, flip_weights(rt, geo, w),
                   bias, out)


def space(profile, geo, op):
    """The GEMM's tunables, with each tiling on CPUs (F(4x4) is built for those only)."""
    tiles = sorted(TILINGS) if is_cpu(profile) else [2]
    return [dict(p, WM=m) for p in gemm_space(profile, geo, op) for m in tiles]


WINOGRAD = Variant("winograd", "Winograd F(2x2,3x3) (16 GEMMs) or, on CPUs, F(4x4,3x3) "
                   "(36) between tile transforms (3x3 stride-1 layers; grad_input by "
                   "flipped weights)",
                   validate, {"forward": forward, "grad_input": grad_input}, space,
                   gemm_defaults, ops=("forward", "grad_input"), fit=fit, pack=pack,
                   test_params=tuple(dict(p, WM=m) for p in TEST_PARAMS[:2] for m in (2, 4)))
