"""A 1x1 convolution on 1x1 planes (a classifier head, a squeeze-and-excitation layer): a
fully connected layer, run as one GEMM with the images as rows and the output channels as
columns.

    out (N x K) = x (N x C) . W^T (C x K)  (+ bias per column)

gemm1x1 would make each image's one pixel the GEMM's only column: a work-item's tile of
NV*TN columns then holds one useful lane and gathers B lane by lane (DenseNet-121's
1024 -> 1000 classifier took 0.95 ms on a Xeon, about 7x ONNX Runtime's time). Here a
tile's columns are NV*TN output channels, and the weights, packed once (pack), are read
as one contiguous stream per work-item (gemm.cl B_PACKED), which is all a
memory-bound product of one image needs. Forward only; the gradients stay gemm1x1's.
"""
from __future__ import annotations

from ..epilogue import NO_ACTIVATION
from .base import Variant
from .gemm import TEST_PARAMS, is_pointwise, space
from .tiled_gemm import STRIDED_BIAS, gemm, matrix_params, pack_b, validate_params


def is_fully_connected(geo) -> bool:
    """A pointwise convolution of one group whose output planes are one pixel."""
    return is_pointwise(geo) and geo.groups == 1 and geo.Ho * geo.Wo == 1


def validate(profile, geo, op, params):
    if not is_fully_connected(geo):
        return "only 1x1 convolutions of one group on 1x1 planes (a fully connected layer)"
    return validate_params(profile, params)


def defaults(profile, geo, op):
    """The plain matrix product's tunables for (images x output channels)."""
    return matrix_params(profile, geo.N, geo.K)


def pack(rt, geo, params, w):
    """W^T in the GEMM's column panels of the tile's NV*TN output channels
    (tiled_gemm.pack_b): (packed, panel stride)."""
    return pack_b(rt, params, w, geo.C, geo.K, trans_b=True)


def forward(rt, geo, params, x, w, bias, out, act=NO_ACTIVATION, packed=None,
            x_image=None, out_image=None):
    """`packed`: pack()'s result for these weights and params, or None to read `w` as
    it is (B stored transposed, gathered into the vectors). x_image, out_image: floats
    from one image to the next where x or out are strided images (arrays.image_stride):
    they are the rows of the GEMM's A and C."""
    N, C, K = geo.N, geo.C, geo.K
    if packed is None:
        b, ldb = w, C
    else:
        b, ldb = packed
    gemm(rt, params, N, K, C, 1,
         x, x_image or C, (0, 0, 0),
         b, ldb, (0, 0, 0),
         out, out_image or K, (0, 0),
         1, 1, b_trans=packed is None, b_packed=packed is not None,
         bias=bias, bias_kind=STRIDED_BIAS, bias_strides=(0, 0, 1), act=act)
    return out


LINEAR = Variant("linear", "1x1 convolution on 1x1 planes as a fully connected layer "
                 "(images x output channels); forward only",
                 validate, {"forward": forward}, space, defaults,
                 ops=("forward",), pack=pack, test_params=TEST_PARAMS)
