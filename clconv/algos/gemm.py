"""GEMM convolution variants: im2col + tiled GEMM, and 1x1 convolution as a plain GEMM.

forward:     out[n, g] (Kg x P)     = W[g] (Kg x CgRS) . col[n, g] (CgRS x P)  (+bias)
grad_input:  stride 1: the forward above applied to dY with flipped weights (one big GEMM);
             else dcol[n, g] (CgRS x P) = W[g]^T . dY[n, g], then col2im (none for 1x1);
             on CPUs, with rows of 512 weights or more, as dcol^T = dY^T . W
grad_weight: dW[g]^T (CgRS x Kg)    = sum_n col[n, g] . dY[n, g]^T (dY transposed first);
             on CPUs dW[g] (Kg x CgRS) = sum_n dY[n, g] . col[n, g]^T
with P = Ho*Wo and CgRS = C/groups * kh * kw. The GEMM is `tiled_gemm.gemm` (`gemm.cl`).
With BP=1 (the avx512 CPU class), a forward with packed weights (inference's; training's
where the weights are packed at each call) writes its columns in the GEMM tile's column
panels (im2col_panels, gemm.cl B_PACKED). On CPUs the gradients' GEMMs read packed
operands too, packed in passes they make anyway (flip_weights_panels, pack_columns,
transpose_planes, im2col_row_panels).
"""
from __future__ import annotations

from ..build import DEFAULT_GROUP_SIZE, get_kernel, group_2d, launch_grid
from ..epilogue import NO_ACTIVATION
from ..geometry import ConvGeometry, grad_input_as_forward
from .base import LAYOUT, Variant, flip_weights, is_cpu, is_vc4cl, layout_group, round_up, \
    scratch, window_defines
from .tiled_gemm import STRIDED_BIAS, defaults, gemm, pack_a, tile_n, validate_params


def is_pointwise(geo) -> bool:
    """A 1x1, stride-1, unpadded convolution: the input already is the column matrix."""
    return (geo.kh == geo.kw == 1 and geo.stride == (1, 1) and geo.pad_top == 0
            and geo.pad_left == 0 and geo.Ho == geo.H and geo.Wo == geo.W)


def im2col(rt, x, geo, ldc):
    rows = geo.N * geo.C * geo.kh * geo.kw
    col = scratch(rt, (rows, ldc))
    cpu = is_cpu(rt.profile)
    kernel = get_kernel(rt, LAYOUT, "im2col", {"IM2COL_PAIRS": 1} if cpu else {})
    # whole images per work-item on a CPU (each work-item has a cost), rows elsewhere
    chunk = geo.Ho if cpu else 1
    chunks = -(-geo.Ho // chunk)
    launch_grid(rt, kernel, (chunks, rows), (1, layout_group(rt, rows)),
                x, col, rows, ldc, chunk, geo.C, geo.H, geo.W, geo.Ho, geo.Wo, *_window(geo))
    return col


PANEL_ROWS = 64  # rows of the column matrix per im2col_panels work-item


def im2col_panels(rt, x, geo, panel):
    """The column matrix in the GEMM's B panels of `panel` columns (gemm.cl B_PACKED):
    per (image, group), panels of CgRS rows x `panel` columns, one after another.
    Returns it, the panel stride and the (image, group) stride."""
    G = geo.groups
    rows = (geo.C // G) * geo.kh * geo.kw
    panels = -(-(geo.Ho * geo.Wo) // panel)
    colp = scratch(rt, (geo.N * G * panels * rows * panel,))
    kernel = get_kernel(rt, LAYOUT, "im2col_panels", {"PANEL": panel, **window_defines(geo)})
    launch_grid(rt, kernel, (panels, -(-rows // PANEL_ROWS), geo.N * G), (1, 1, 1),
                x, colp, rows, PANEL_ROWS, panels, G, geo.C, geo.H, geo.W, geo.Ho, geo.Wo,
                geo.pad_top, geo.pad_left)
    return colp, rows * panel, panels * rows * panel


def _window(geo):
    return (geo.kh, geo.kw, *geo.stride, geo.pad_top, geo.pad_left, *geo.dilation)


def _columns(rt, x, geo, params):
    """(col, ld): the column matrix of x and its row length."""
    if is_pointwise(geo):
        return x, geo.H * geo.W
    ld = round_up(geo.Ho * geo.Wo, tile_n(params))
    return im2col(rt, x, geo, ld), ld


def pack_on_device(rt, geo, params, w):
    """pack()'s layout made on the device: the weights as a one-row image of K channels,
    crs pixels wide, whose 1x1 column matrix im2col_row_panels writes in panels."""
    G = geo.groups
    crs = (geo.C // G) * geo.kh * geo.kw
    rows = ConvGeometry(1, geo.K, 1, crs, geo.K, 1, 1, 1, crs, (1, 1), 0, 0, (1, 1), G)
    return im2col_row_panels(rt, w, rows, int(params["TM"]))


def pack(rt, geo, params, w):
    """The weights, each group's (Kg x CgRS) matrix, in the GEMM's panels of TM rows
    (tiled_gemm.pack_a), as forward reads them given `packed`."""
    G = geo.groups
    Kg, crs = geo.K // G, (geo.C // G) * geo.kh * geo.kw
    return pack_a(rt, params, w, G, Kg, crs)


def reads_input_affine(geo) -> bool:
    """Whether forward() can apply input_affine as it loads the input: a pointwise
    convolution of one group, whose GEMM reads the input itself, channel k as row k."""
    return is_pointwise(geo) and geo.groups == 1


def forward(rt, geo, params, x, w, bias, out, act=NO_ACTIVATION, packed=None,
            input_affine=None, x_image=None, out_image=None, out_border=None):
    """`packed`: pack()'s result for these weights and params, or None to read `w`.
    input_affine: (scale, shift, relu), the convolution of relu(x * scale[c] +
    shift[c]) instead of x (where reads_input_affine(geo)). x_image, out_image: floats
    from one image of x (pointwise only: the GEMM reads it) or of out to the next, where
    they are strided images (arrays.image_stride); None: C-contiguous. out_border: the
    width of a zero border around every output plane, `out` then the bordered planes
    (arrays.padded_planes), written inside the borders only."""
    if input_affine is not None and not reads_input_affine(geo):
        raise ValueError("input_affine: only a pointwise convolution of one group applies "
                         f"it as it reads its input; got a {geo.kh}x{geo.kw} kernel, stride "
                         f"{geo.stride}, {geo.groups} group(s)")
    if x_image is not None and not is_pointwise(geo):
        raise ValueError("x_image: only a pointwise convolution reads its input in "
                         "place; make the input contiguous first")
    G, P = geo.groups, geo.Ho * geo.Wo
    Kg, crs = geo.K // G, (geo.C // G) * geo.kh * geo.kw
    if (packed is None and is_cpu(rt.profile) and int(params.get("BP", 0)) == 1
            and Kg <= geo.N * P):
        # the weights, no more floats than the columns, packed here for the panel path
        # below: with the avx512 class's BP=1 (POCL 3.1, Xeon Emerald Rapids, session 28,
        # forward x PyTorch, two rounds) ResNet-18's dilated layer 0.50-0.59 -> 0.68-0.69,
        # the stride-2 one 0.69-0.73 -> 0.86-0.96, MobileNet's 1x1 at 28x28 1.01-1.05 ->
        # 1.27-1.44; on POCL for haswell (BP=0, packed weights only) no faster. Where
        # the weights outnumber the columns (7x7 and 14x14 layers) packing them cost
        # more than it saved (session 27).
        packed = pack_on_device(rt, geo, params, w)
    if packed is None:
        a, lda, sa = w, crs, Kg * crs
    else:
        a, lda, sa = packed
    panels = (packed is not None and int(params.get("BP", 0)) == 1 and is_cpu(rt.profile)
              and not is_pointwise(geo))
    if panels:
        # tunable BP (CPU classes, tuning_defaults.json): with the weights packed too
        # (inference), the columns in the GEMM tile's panels, one stream per work-item
        # (gemm.cl B_PACKED). Measured (docs/performance.md, session 7): on AVX-512 the
        # ResNet stem 1.36x in a model run; with row-major weights (training) a 3x3 at
        # 56x56 went 1.31 -> 1.81 ms, and packing a 1x1 convolution's input first
        # 0.36 -> 0.60-0.78 ms, so neither does; on AVX2 (POCL for haswell) the 6 x 16
        # tile spilled reading packed B (ResNet-50 65 -> 70 ms), so its class keeps BP=0
        col, ld, per_group = im2col_panels(rt, x, geo, tile_n(params))
        sb = (G * per_group, per_group, 0)
    else:
        col, ld = _columns(rt, x, geo, params)
        sb = (x_image or G * crs * ld, crs * ld, 0)
    plane, rows = output_planes(geo, out_image, out_border)
    gemm(rt, params, Kg, P, crs, 1,
         a, lda, (0, sa, 0),
         col, ld, sb,
         out, plane, (out_image or geo.K * plane, Kg * plane),
         geo.N * G, G, a_packed=packed is not None, bias=bias, act=act,
         b_affine=input_affine, b_packed=panels,
         **({} if rows is None else {"shifted": (1, 0, geo.Wo, geo.Wo), "out_rows": rows}))
    return out


def output_planes(geo, out_image=None, out_border=None):
    """(floats per output plane, out_rows for the GEMM) of a forward's output: its own
    planes, or inside zero borders of out_border (tiled_gemm.gemm's out_rows)."""
    if not out_border:
        return geo.Ho * geo.Wo, None
    if out_image is not None:
        raise ValueError("out_border: an output of strided images has no borders")
    wp = geo.Wo + 2 * out_border
    return (geo.Ho + 2 * out_border) * wp, (wp, out_border * wp + out_border)


def _flip_path(geo, params) -> bool:
    """grad_input as a forward conv with flipped weights (stride 1 only)? Tunable GI:
    1 flip, 2 GEMM + col2im, 0 (default) flip unless the weights (flipped on every
    call) outnumber the columns col2im would gather (late layers, small images)."""
    if geo.stride != (1, 1) or is_pointwise(geo):
        return False
    mode = int(params.get("GI", 0))
    if mode:
        return mode == 1
    return geo.K // geo.groups <= geo.N * geo.Ho * geo.Wo


def flip_weights_panels(rt, geo, w, tm):
    """base.flip_weights' result as pack() would give it for a TM-row tile: (packed,
    lda, group stride), the flipped weights of each group in panels of TM rows."""
    G, taps = geo.groups, geo.kh * geo.kw
    Cg, Kg = geo.C // G, geo.K // G
    panels = -(-Cg // tm)
    lda = Kg * taps * tm
    wp = scratch(rt, (G * panels * lda,))
    kernel = get_kernel(rt, LAYOUT, "flip_weights_panels",
                        {"FLIP_PANEL": tm, "KH": geo.kh, "KW": geo.kw})
    launch_grid(rt, kernel, (panels, G), (1, 1), w, wp, Cg, Kg, panels)
    return wp, lda, panels * lda


def grad_input(rt, geo, params, grad_out, w, out, bias=None):
    if _flip_path(geo, params):
        # a forward convolution of grad_out with the flipped weights: one big GEMM
        # instead of a GEMM with a short K followed by col2im
        tgeo = grad_input_as_forward(geo)
        if is_cpu(rt.profile):
            # flipped straight into the GEMM's panels: the packed forward (inference's),
            # for the price of the flip
            packed = flip_weights_panels(rt, geo, w, int(params["TM"]))
            return forward(rt, tgeo, params, grad_out, None, bias, out, packed=packed)
        return forward(rt, tgeo, params, grad_out, flip_weights(rt, geo, w), bias, out)
    G, P = geo.groups, geo.Ho * geo.Wo
    Kg, crs = geo.K // G, (geo.C // G) * geo.kh * geo.kw
    pointwise = is_pointwise(geo)
    dcol = out if pointwise else scratch(rt, (geo.N * geo.C * geo.kh * geo.kw, P))
    if is_cpu(rt.profile) and crs >= LONG_WEIGHT_ROW:
        # dcol^T (P x CgRS) = dY^T (P x Kg) . W (Kg x CgRS), stored transposed: dY (small)
        # in the GEMM's A panels, the weights read as they are, rows of CgRS floats. As
        # W^T . dY, each K step read TM floats a weight row (up to 18 KB) away from the
        # last, a new page every step. Measured (POCL 3.1, Xeon Emerald Rapids, AVX-512,
        # session 28), the GEMM of ResNet-18's 3x3 layer at 7x7 2.24 -> 0.91 ms, at 14x14
        # 2.15 -> 0.87, MobileNet's 1x1 at 14x14 0.84 -> 0.32.
        tm = int(params["TM"])
        dyp, lda, per_image = pack_columns(rt, grad_out, geo.N * G, Kg, P, tm)
        gemm(rt, params, P, crs, Kg, 1,
             dyp, lda, (G * per_image, per_image, 0),
             w, crs, (0, Kg * crs, 0),
             dcol, P, (G * crs * P, crs * P),
             geo.N * G, G, a_packed=True, c_trans=True,
             bias=bias if pointwise else None, bias_kind=STRIDED_BIAS,
             bias_strides=(crs, 0, 1))
    else:
        gemm(rt, params, crs, P, Kg, 1,
             w, crs, (0, Kg * crs, 0),
             grad_out, P, (geo.K * P, Kg * P, 0),
             dcol, P, (G * crs * P, crs * P),
             geo.N * G, G, a_kmajor=True, bias=bias if pointwise else None)
    if not pointwise:
        kernel = get_kernel(rt, LAYOUT, "col2im", window_defines(geo))
        NC = geo.N * geo.C
        across, down = -(-geo.W // geo.stride[1]), -(-geo.H // geo.stride[0])
        launch_grid(rt, kernel, (across, down, NC),
                    group_2d(DEFAULT_GROUP_SIZE, across, down) + (1,),
                    dcol, out, bias if bias is not None else dcol, bias is not None, geo.C,
                    NC, P, geo.H, geo.W, geo.Ho, geo.Wo, geo.pad_top, geo.pad_left)
    return out


def pack_columns(rt, src, batches, rows, cols, panel):
    """`batches` row-major (rows x cols) matrices in the GEMM's panels of `panel` columns,
    as im2col_panels writes a column matrix (a 1x1 convolution's input is its own).
    Returns them, the panel stride and the matrix stride."""
    panels = -(-cols // panel)
    dst = scratch(rt, (batches * panels * rows * panel,))
    kernel = get_kernel(rt, LAYOUT, "pack_column_panels", {"PANEL": panel})
    launch_grid(rt, kernel, (panels, batches), (1, 1), src, dst, rows, cols, panels)
    return dst, rows * panel, panels * rows * panel


# Weight rows (CgRS floats) from which grad_input's GEMM reads the weights as rows
# (dcol^T = dY^T . W) on CPUs: read K-major, as W^T, each K step moves a row on, 2 KB or
# more. Below it the K-major GEMM was faster: MobileNet's 128 -> 256 1x1 at 28x28 (128
# floats) 0.21 against 0.26 ms (AVX-512), 0.28 against 0.38 (AVX2; session 28).
LONG_WEIGHT_ROW = 512


def im2col_row_panels(rt, x, geo, panel):
    """The column matrix of x with its rows in panels of `panel` rows, pixel-major, per
    (image, group): panels of Ho*Wo x `panel` floats, one after another. That is gemm.cl's
    A_PACKED of the column matrix (TM = panel) and its B_PACKED of the transpose (NV*TN
    = panel). Returns it, the panel stride and the (image, group) stride."""
    G, P = geo.groups, geo.Ho * geo.Wo
    rows = (geo.C // G) * geo.kh * geo.kw
    panels = -(-rows // panel)
    colr = scratch(rt, (geo.N * G * panels * P * panel,))
    kernel = get_kernel(rt, LAYOUT, "im2col_row_panels",
                        {"ROW_PANEL": panel, **window_defines(geo)})
    launch_grid(rt, kernel, (panels, geo.N * G), (1, 1),
                x, colr, rows, panels, G, geo.C, geo.H, geo.W, geo.Ho, geo.Wo,
                geo.pad_top, geo.pad_left)
    return colr, P * panel, panels * P * panel


def transpose_planes(rt, grad_out, blocks, Kg, P, width, panels):
    """dY as `blocks` (Kg x P) blocks (one per image and group) -> each block transposed,
    (P x Kg) rows of round_up(Kg, width) floats, or with `panels` in panels of `width`
    channels, pixel-major (gemm.cl's A_PACKED of dY, TM = width): one array of `blocks`
    blocks of P * round_up(Kg, width) floats. Returns it and round_up(Kg, width)."""
    ld = round_up(Kg, width)
    out = scratch(rt, (blocks, P, ld))
    kernel = get_kernel(rt, LAYOUT, "transpose_batched", {"OUT_PANEL": width} if panels else {})
    strips = -(-P // 4)  # four columns each
    # a local size of 1 on a CPU: whole strips per work-item, not vector lanes
    local = 1 if is_cpu(rt.profile) else layout_group(rt, strips)
    launch_grid(rt, kernel, (strips, blocks), (local, 1), grad_out, out, Kg, P, ld, blocks)
    return out, ld


def grad_weight(rt, geo, params, x, grad_out, out):
    G, P = geo.groups, geo.Ho * geo.Wo
    Kg, crs = geo.K // G, (geo.C // G) * geo.kh * geo.kw
    if is_cpu(rt.profile):
        # dW (Kg x CgRS) = sum_n dY (Kg x P) . col^T (P x CgRS), both operands in the
        # GEMM's panels, so each tile's K loop reads two contiguous streams: dY
        # transposed into panels of TM channels, the column matrix written in panels of
        # NV*TN rows. As col . dY^T, stored transposed, the K loop read TM rows of the
        # column matrix P floats apart and the tile was stored float by float. Measured
        # (POCL 3.1, Xeon Emerald Rapids, AVX-512, session 28), the GEMM of ResNet-18's
        # 3x3 layers 0.79 -> 0.66 ms at 56x56, 1.05 -> 0.66 at 14x14, 1.95 -> 0.86 at 7x7.
        tm, width = int(params["TM"]), tile_n(params)
        dyp, ldk = transpose_planes(rt, grad_out, geo.N * G, Kg, P, tm, panels=True)
        colr, ldb, per_image = im2col_row_panels(rt, x, geo, width)
        gemm(rt, params, Kg, crs, P, geo.N,
             dyp, P * tm, (0, P * ldk, G * P * ldk),
             colr, ldb, (0, per_image, G * per_image),
             out, crs, (0, Kg * crs),
             G, G, a_packed=True, b_packed=True)
        return out
    col, ld = _columns(rt, x, geo, params)
    dyt, ldk = transpose_planes(rt, grad_out, geo.N * G, Kg, P, tile_n(params),
                                panels=False)
    gemm(rt, params, crs, Kg, P, geo.N,
         col, ld, (0, crs * ld, G * crs * ld),
         dyt, ldk, (0, P * ldk, G * P * ldk),
         out, crs, (0, Kg * crs),
         G, G, c_trans=True)
    return out


def space(profile, geo, op):
    """Tunables the tuner samples: tile shapes up to float16 vectors (VC4CL's width),
    6 rows included (the micro-kernel of 16-register CPUs, cpu_class.py), and 12 rows
    or 4 vectors where the CPU class's registers hold them (AVX-512's tiles for an input
    batch norm and for a short K), both
    loop orders, mad/fma, and work-groups up to the device limit (12 included)."""
    limit = profile.max_work_group_size
    wgs = sorted({w for w in (1, 4, 8, 12, 16, 32, 64) if w <= limit} | {min(12, limit)})
    cls = profile.cpu_class
    out = []
    for tn in (4, 8, 16):
        for tm in (2, 4, 6, 8, 12):
            for nv in (1, 2, 4):
                if (tm > 8 or nv > 2) and not (cls is not None and cls.fits(tm, tn, nv)):
                    continue
                for mfast in (0, 1):
                    for fma in (0, 1):
                        for wg in wgs:
                            out.append({"TM": tm, "TN": tn, "NV": nv, "WG": wg,
                                        "MFAST": mfast, "FMA": fma})
    if op == "grad_input" and geo.stride == (1, 1):
        out = [dict(p, GI=gi) for p in out for gi in (1, 2)]
    return out


def fit_tile(geo, op, params):
    """The untuned tunables fitted to a layer: a forward's loop order (weights_first,
    output_rows_first). Every GEMM keeps the CPU class's two vectors of columns at every
    size: the tile's 16 accumulators keep both of an Intel core's FMA ports busy, and one
    vector's 8 do not. The gradients took one vector below 100 output pixels (1x1: 400)
    while their GEMMs read the weights or the column matrix as rows far apart; reading
    both operands in panels (session 28: POCL 3.1, Xeon Emerald Rapids, AVX-512), two
    vectors took the grad_weight GEMM of ResNet-18's 7x7 layer 1.16 -> 0.86 ms and of
    MobileNet's 1x1 at 14x14 0.43 -> 0.33, the grad_input GEMM at 7x7 1.45 -> 0.97."""
    if op != "forward":
        return params
    rows = geo.K // geo.groups
    params = weights_first(params, rows, geo.Ho * geo.Wo)
    return output_rows_first(params, rows, geo.C // geo.groups) \
        if is_pointwise(geo) else params


def weights_first(params: dict, rows: int, columns: int) -> dict:
    """Untuned MFAST=0 for a forward GEMM of more rows (output channels) than columns
    (output pixels per image, or Winograd's tiles), whose weights outweigh its input:
    its work-items then go along the columns first, so each row panel of the weights is
    read from memory once and reused from the caches, where MFAST=1 read every panel
    again for each column tile. With the caches emptied between runs (bench-model)
    ResNet-50's 14x14 and 7x7 GEMMs took 4-10 % less time each and SqueezeNet's
    classifier 0.77 -> 0.67 ms (session 25; hot and alone they had measured no faster).
    Only where the untuned tunables name MFAST (the CPU entries' 1; GPUs' are 0 already,
    and a device without an entry keeps the kernel's default)."""
    return dict(params, MFAST=0) if rows > columns and "MFAST" in params else params


def is_memory_bound(rows: int, depth: int) -> bool:
    """A GEMM that moves more bytes than it computes on: per column, at most 8 flops per
    float32 byte it reads and writes (2 * rows * depth flops against 4 * (rows + depth)
    bytes of input and output; its weights stay in the caches)."""
    return rows * depth <= 16 * (rows + depth)


def output_rows_first(params: dict, rows: int, depth: int) -> dict:
    """Untuned MFAST=0 for a memory-bound pointwise GEMM that writes more than it reads
    (more rows, output channels, than its depth, input channels: SqueezeNet's expands):
    its time goes to writing the output, and work-items along the columns write long
    runs of a few output rows, where MFAST=1 wrote short pieces of many rows at once.
    With the caches emptied between runs (bench-model), SqueezeNet's 55x55 16 -> 64
    expand went 0.14 -> 0.07 ms (AVX-512, the class's 8 x 32 tile; session 26);
    ResNet-50's 64 -> 256 expand, 16 flops per byte, went no faster. Only where the
    untuned tunables name MFAST, as weights_first."""
    if rows > depth and is_memory_bound(rows, depth) and "MFAST" in params:
        return dict(params, MFAST=0)
    return params


VC4C_MAX_COL2IM_BLOCK = 4  # col2im's SH*SW outputs per work-item that VC4C compiled


def _validate(pointwise_only):
    def validate(profile, geo, op, params):
        if pointwise_only and not is_pointwise(geo):
            return "only 1x1 convolutions with stride 1 and no padding"
        (sh, sw) = geo.stride
        if (is_vc4cl(profile) and op == "grad_input" and not _flip_path(geo, params)
                and sh * sw > VC4C_MAX_COL2IM_BLOCK):
            # col2im unrolls an SH x SW block of outputs and their taps: 2x2 compiled,
            # 3x3 failed (register allocation) with a 3x1 window
            return (f"stride {sh}x{sw}: col2im's {sh * sw}-output blocks, VC4C compiles "
                    f"at most {VC4C_MAX_COL2IM_BLOCK}")
        reason = validate_params(profile, params)
        if reason is None and not is_pointwise(geo):
            # the column scratch buffer must fit one allocation (small on 32-bit Pi GPUs)
            taps = geo.kh * geo.kw
            P = round_up(max(geo.Ho * geo.Wo, geo.H * geo.W), tile_n(params))
            nbytes = 4 * geo.N * max(geo.C, geo.K) * taps * P
            if nbytes > profile.max_mem_alloc_size:
                reason = (f"column buffer of {nbytes} bytes exceeds the device's max "
                          f"allocation {profile.max_mem_alloc_size}")
        return reason
    return validate


RUN = {"forward": forward, "grad_input": grad_input, "grad_weight": grad_weight}

# Non-default GEMM tunables for the tests: tails in M and N, both loop orders, mad and fma,
# column panels (BP: packed forwards on CPUs) of 8 columns.
TEST_PARAMS = (
    {"TM": 3, "TN": 4, "NV": 2, "WG": 5, "MFAST": 0, "FMA": 0, "BP": 1},
    {"TM": 8, "TN": 16, "NV": 1, "WG": 12, "MFAST": 1, "FMA": 1},
    {"TM": 1, "TN": 2, "NV": 1, "WG": 1, "MFAST": 1, "KUNROLL": 4, "GI": 2},
    {"TM": 2, "TN": 8, "NV": 1, "WG": 3, "MFAST": 1, "GI": 1},
)
IM2COL = Variant("im2col", "im2col into a register-tiled, vectorised GEMM (col2im for grad_input)",
                 _validate(False), RUN, space, defaults, fit=fit_tile,
                 pack=pack, test_params=TEST_PARAMS)
GEMM_1X1 = Variant("gemm1x1", "1x1 stride-1 convolution as a plain GEMM on the input",
                   _validate(True), RUN, space, defaults,
                   fit=fit_tile, pack=pack,
                   test_params=TEST_PARAMS)
