"""Winograd F(2x2, 3x3) convolution: 3x3, stride 1, no dilation, one group. Forward,
and grad_input as the forward of the output gradient with flipped weights.

Weights and input tiles are transformed into 16 matrices each, multiplied by 16 GEMMs
(the `gemm.cl` kernel, with the GEMM variants' tunables) and transformed back, bias and
the activation fused: 2.25 times fewer multiply-adds than the direct product, paid for with three
extra passes over memory. The weights are transformed on every call, as they change
during training, unless the caller packed them once (`pack`, for inference).
"""
from __future__ import annotations

from ..build import get_kernel, launch_grid
from ..epilogue import NO_ACTIVATION
from ..geometry import grad_input_as_forward
from .base import Variant, flip_weights, layout_group, pad, round_up, scratch
from .gemm import space as gemm_space
from .tiled_gemm import defaults as gemm_defaults, gemm, pack_a, tile_n, validate_params

KERNELS = "winograd.cl"


def applies(geo) -> bool:
    return (geo.kh == geo.kw == 3 and geo.stride == (1, 1) and geo.dilation == (1, 1)
            and geo.groups == 1)


def _tiles(geo):
    """(tiles_h, tiles_w8, T): 2x2 output blocks down, across (rounded up to the 8 tiles a
    transform work-item takes), and in all images."""
    th, tw8 = -(-geo.Ho // 2), round_up(-(-geo.Wo // 2), 8)
    return th, tw8, geo.N * th * tw8


def _convolution_run(geo, op: str):
    """The forward convolution `op` runs: geo itself, or for grad_input the convolution
    of the output gradient with the flipped weights."""
    return geo if op == "forward" else grad_input_as_forward(geo)


def pays(geo, op: str, packed: bool = False) -> bool:
    """Where Winograd beat im2col + GEMM in `clconv bench` on POCL: enough channels that
    the GEMMs dominate the three transform passes, enough tiles for the GEMMs to run
    well (ResNet-18 3x3 at 28 and the VGG layer, not at 56 with 64 channels or at 14/7).
    grad_input is judged by the flipped convolution it runs. With the weights `packed`
    once (an inference forward), no call transforms them, and it paid from fewer tiles:
    ResNet-50's 256-channel 3x3 at 14x14 (56 tiles) 1.9x im2col, its 512-channel one at
    7x7 (32 tiles) 0.9x (POCL, AVX-512, batch 1), and from fewer channels: against the
    shifted GEMM, Inception-v1's 96 -> 128 at 28x28 0.77-0.84x, 96 -> 208 at 14x14
    0.93x, but 64 -> 64 at 56x56 1.12x and SqueezeNet's 64 -> 256 at 13x13 1.00x
    (session 16, Zen 4)."""
    if op not in ("forward", "grad_input") or not applies(geo):
        return False
    conv = _convolution_run(geo, op)
    _, _, tiles = _tiles(conv)
    if packed and op == "forward":
        return min(conv.C, conv.K) >= PACKED_MIN_CHANNELS and tiles >= PACKED_MIN_TILES
    return min(conv.C, conv.K) >= MIN_CHANNELS and tiles >= MIN_TILES


MIN_CHANNELS, MIN_TILES = 128, 128
PACKED_MIN_CHANNELS, PACKED_MIN_TILES = 96, 48


def validate(profile, geo, op, params):
    if not applies(geo):
        return "only 3x3 convolutions with stride 1, no dilation and one group"
    if op == "grad_input" and not (0 <= geo.pad_top <= 2 and 0 <= geo.pad_left <= 2):
        return "grad_input needs padding 0..2 (the flipped convolution pads by 2 - padding)"
    reason = validate_params(profile, params)
    if reason is not None:
        return reason
    conv = _convolution_run(geo, op)
    _, _, T = _tiles(conv)
    ldt = round_up(T, tile_n(params))
    # the largest buffer: weights (16, K, C), input tiles (16, C, ldt), products (16, K, ldt)
    nbytes = 4 * 16 * max(conv.K * conv.C, conv.C * ldt, conv.K * ldt)
    if nbytes > profile.max_mem_alloc_size:
        return (f"a transform buffer of {nbytes} bytes exceeds the device's max allocation "
                f"{profile.max_mem_alloc_size}")
    return None


def _transform_weights(rt, geo, w):
    """The weights' 16 transformed (K, C) matrices U."""
    K, C = geo.K, geo.C
    U = scratch(rt, (16, K, C))
    launch_grid(rt, get_kernel(rt, KERNELS, "winograd_weights"), (-(-C // 8), K),
                (1, layout_group(rt, K)), w, U, K, C)
    return U


def pack(rt, geo, params, w):
    """U in the GEMM's panels of TM rows (tiled_gemm.pack_a), as forward reads it given
    `packed`: transformed and packed once."""
    return pack_a(rt, params, _transform_weights(rt, geo, w), 16, geo.K, geo.C)


def forward(rt, geo, params, x, w, bias, out, act=NO_ACTIVATION, packed=None):
    """`packed`: pack()'s result for these weights, or None to transform them here."""
    K, C = geo.K, geo.C
    th, tw8, T = _tiles(geo)
    ldt = round_up(T, tile_n(params))
    # zero-bordered input covering every tile: no bounds tests in the input transform
    hp, wp = 2 * th + 2, 2 * tw8 + 2
    xp = pad(rt, x, geo.N * C, geo.H, geo.W, hp, wp, geo.pad_top, geo.pad_left,
             int(params["WG"]))
    if packed is None:
        a, lda, sa = _transform_weights(rt, geo, w), C, K * C
    else:
        a, lda, sa = packed
    V = scratch(rt, (16, C, ldt))
    M = scratch(rt, (16, K, ldt))
    tile_grid = (tw8 // 8, th)  # 8 tiles per work-item across, a tile row down
    launch_grid(rt, get_kernel(rt, KERNELS, "winograd_input"), tile_grid + (geo.N * C,),
                (1, layout_group(rt, th), 1), xp, V, C, hp, wp, th, tw8, ldt)
    gemm(rt, params, K, T, C, 1,
         a, lda, (sa, 0, 0),
         V, ldt, (C * ldt, 0, 0),
         M, ldt, (K * ldt, 0),
         16, 1, a_packed=packed is not None)
    launch_grid(rt, get_kernel(rt, KERNELS, "winograd_output", act.defines),
                tile_grid + (geo.N * K,), (1, layout_group(rt, th), 1),
                M, bias if bias is not None else M, bias is not None,
                out, K, geo.Ho, geo.Wo, th, tw8, ldt, xp, w, C, hp, wp, *act.scalars)
    return out


def grad_input(rt, geo, params, grad_out, w, out, bias=None):
    return forward(rt, grad_input_as_forward(geo), params, grad_out, flip_weights(rt, geo, w),
                   bias, out)


WINOGRAD = Variant("winograd", "Winograd F(2x2,3x3): 16 GEMMs between tile transforms "
                   "(3x3 stride-1 layers; grad_input by flipped weights)",
                   validate, {"forward": forward, "grad_input": grad_input}, gemm_space,
                   gemm_defaults, ops=("forward", "grad_input"), pack=pack)
