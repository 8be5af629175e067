"""3-D convolution through the one tuned GEMM (`gemm.cl`), as the 2-D im2col variant:

forward:     out[n, g] (Kg x P)     = W[g] (Kg x CgT) . col[n, g] (CgT x P)  (+bias)
grad_input:  dcol[n, g] (CgT x P)   = W[g]^T . dY[n, g], then col2vol (none for 1x1x1)
grad_weight: dW[g]^T (CgT x Kg)     = sum_n col[n, g] . dY[n, g]^T (dY transposed first)
with P = Do*Ho*Wo, T = kd*kh*kw taps and CgT = C/groups * T. vol2col and col2vol are in
`vol2col.cl`; the GEMM, its tunables and the transpose are the 2-D path's.
"""
from __future__ import annotations

from .. import tuning
from ..build import DEFAULT_GROUP_SIZE, get_kernel, group_2d, launch_grid
from ..epilogue import NO_ACTIVATION
from ..validation import check_allocation
from . import gemm
from .base import is_cpu, layout_group, round_up, scratch

KERNELS = "vol2col.cl"
SMALL_VOLUME = 100  # output voxels per image below which the GEMMs take NV=1


def params_for(profile, geo, op: str) -> dict:
    """The GEMM's untuned tunables, as the im2col variant takes them (shipped defaults for
    the device, else the variant's), one vector per row below SMALL_VOLUME output voxels."""
    params = tuning.default_params(profile, "im2col", op) or gemm.defaults(profile, geo, op)
    params = dict(params)
    if geo.out_volume < SMALL_VOLUME:
        params["NV"] = 1
    params["WG"] = max(1, min(int(params["WG"]), profile.max_work_group_size))
    return params


def is_pointwise(geo) -> bool:
    """1x1x1, stride 1, no padding: the input already is the column matrix."""
    return (geo.taps == 1 and set(geo.stride) == {1} and not any(geo.pads)
            and geo.out == geo.size)


def check_columns(profile, geo, params) -> None:
    """Raise ValueError when the column matrix would not fit the device (before any
    kernel runs)."""
    if is_pointwise(geo):
        return
    ld = round_up(max(geo.out_volume, geo.in_volume), gemm.tile_n(params))
    check_allocation(profile, "input", (geo.N * max(geo.C, geo.K) * geo.taps, ld), 4)


def vol2col(rt, x, geo, ld):
    rows = geo.N * geo.C * geo.taps
    col = scratch(rt, (rows, ld))
    kernel = get_kernel(rt, KERNELS, "vol2col")
    lines = geo.out[0] * geo.out[1]
    # all lines per work-item on a CPU (each work-item has a cost), one elsewhere
    chunk = lines if is_cpu(rt.profile) else 1
    launch_grid(rt, kernel, (-(-lines // chunk), rows), (1, layout_group(rt, rows)),
                x, col, rows, ld, chunk, geo.C, *geo.size, *geo.out, *geo.kernel,
                *geo.stride, *geo.pads, *geo.dilation)
    return col


def _columns(rt, x, geo, params):
    if is_pointwise(geo):
        return x, geo.in_volume
    ld = round_up(geo.out_volume, gemm.tile_n(params))
    return vol2col(rt, x, geo, ld), ld


def forward(rt, geo, params, x, w, bias, out, act=NO_ACTIVATION):
    G, P = geo.groups, geo.out_volume
    Kg, crs = geo.K // G, (geo.C // G) * geo.taps
    col, ld = _columns(rt, x, geo, params)
    gemm.gemm(rt, params, Kg, P, crs, 1,
              w, crs, (0, Kg * crs, 0),
              col, ld, (G * crs * ld, crs * ld, 0),
              out, P, (geo.K * P, Kg * P),
              geo.N * G, G, bias=bias, act=act)
    return out


def grad_input(rt, geo, params, grad_out, w, out, bias=None):
    """The input gradient of `geo` (also conv_transpose3d, with `bias`) into `out`."""
    G, P = geo.groups, geo.out_volume
    Kg, crs = geo.K // G, (geo.C // G) * geo.taps
    pointwise = is_pointwise(geo)
    dcol = out if pointwise else scratch(rt, (geo.N * geo.C * geo.taps, P))
    gemm.gemm(rt, params, crs, P, Kg, 1,
              w, crs, (0, Kg * crs, 0),
              grad_out, P, (geo.K * P, Kg * P, 0),
              dcol, P, (G * crs * P, crs * P),
              geo.N * G, G, a_kmajor=True, bias=bias if pointwise else None)
    if pointwise:
        return out
    (kd, kh, kw), (sd, sh, sw), (dd, dh, dw) = geo.kernel, geo.stride, geo.dilation
    kernel = get_kernel(rt, KERNELS, "col2vol", {"KD": kd, "KH": kh, "KW": kw, "SD": sd,
                                                  "SH": sh, "SW": sw, "DD": dd, "DH": dh,
                                                  "DW": dw})
    D, H, W = geo.size
    ncd = geo.N * geo.C * D
    launch_grid(rt, kernel, (W, H, ncd), group_2d(DEFAULT_GROUP_SIZE, W, H) + (1,),
                dcol, out, bias if bias is not None else dcol, int(bias is not None), geo.C,
                ncd, P, *geo.size, *geo.out, *geo.pads)
    return out


def grad_weight(rt, geo, params, x, grad_out, out):
    G, P = geo.groups, geo.out_volume
    Kg, crs = geo.K // G, (geo.C // G) * geo.taps
    col, ld = _columns(rt, x, geo, params)
    # dY (N*K, P) -> dYt (N*G, P, ldk): each group's (Kg x P) block transposed
    dyt, ldk = gemm.transpose_planes(rt, grad_out, geo.N * G, Kg, P, gemm.tile_n(params),
                                     panels=False)
    gemm.gemm(rt, params, crs, Kg, P, geo.N,
              col, ld, (0, crs * ld, G * crs * ld),
              dyt, ldk, (0, P * ldk, G * P * ldk),
              out, crs, (0, Kg * crs),
              G, G, c_trans=True)
    return out
