"""Layers whose weights do not change (inference) are prepared once: the variant chosen
and the weights packed into the layout it reads (Winograd's transformed weights), so a
model's later runs do not transform them again."""
import numpy as np
import pytest

import clconv.functional as F
from clconv import algos
from clconv.algos import gemm as gemm_algo, winograd
from clconv.epilogue import NO_ACTIVATION, RELU
from clconv.ops.conv import ConstantWeightConv2d


def _winograd_launches(monkeypatch):
    """Count the weight-transform launches of the Winograd variant."""
    counts = {"winograd_weights": 0, "winograd4_weights": 0}
    real = winograd.launch_grid

    def counting(rt, kernel, *args, **kwargs):
        if kernel.function_name in counts:
            counts[kernel.function_name] += 1
        return real(rt, kernel, *args, **kwargs)

    monkeypatch.setattr(winograd, "launch_grid", counting)
    return counts


@pytest.mark.parametrize("variant", ["winograd", "im2col", "shifted", "direct"])
@pytest.mark.parametrize("act", [NO_ACTIVATION, RELU], ids=["none", "relu"])
def test_a_prepared_layer_matches_conv2d_activation(variant, act, rng):
    x = rng.standard_normal((2, 5, 9, 11)).astype(np.float32)
    w = rng.standard_normal((7, 5, 3, 3)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    with algos.force(variant):
        layer = ConstantWeightConv2d(x.shape, w, b, padding=1, activation=act)
        assert layer._forward.variant.name == variant
        got = [layer(x).get() for _ in range(2)]
        want = F.conv2d_activation(x, w, b, padding=1, activation=act).get()
    for g in got:
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-5)


def test_winograd_weights_are_transformed_once_not_per_call(monkeypatch, rng):
    counts = _winograd_launches(monkeypatch)
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    with algos.force("winograd"):
        layer = ConstantWeightConv2d(x.shape, w, padding=1)
        for _ in range(3):
            layer(x)
        assert counts["winograd_weights"] == 1
        F.conv2d(x, w, padding=1)  # the functional op packs on every call
        assert counts["winograd_weights"] == 2


def test_f4_winograd_layer_transforms_its_weights_once_and_matches(monkeypatch, rng):
    """F(4x4) tiles (CPUs, layers with 48 tiles and 32 channels): the 36 transformed
    matrices packed once, the result the direct convolution's."""
    counts = _winograd_launches(monkeypatch)
    x = rng.standard_normal((1, 32, 28, 30)).astype(np.float32)
    w = rng.standard_normal((40, 32, 3, 3)).astype(np.float32)
    b = rng.standard_normal(40).astype(np.float32)
    with algos.force("winograd"):
        layer = ConstantWeightConv2d(x.shape, w, b, padding=1, activation=RELU)
        if int(layer._forward.params.get("WM", 2)) != 4:
            pytest.skip("F(4x4) Winograd tiles are built for CPUs only; this device "
                        "runs F(2x2)")
        got = [layer(x).get() for _ in range(3)]
    assert counts == {"winograd_weights": 0, "winograd4_weights": 1}
    with algos.force("direct"):
        want = F.conv2d_activation(x, w, b, padding=1, activation=RELU).get()
    for g in got:
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("variant,kernel", [("im2col", 3), ("shifted", 3), ("gemm1x1", 1)])
@pytest.mark.parametrize("case", range(1 + len(gemm_algo.TEST_PARAMS)))
def test_gemm_weights_packed_in_row_panels_give_the_unpacked_result(variant, kernel, case,
                                                                    rng):
    """Each group's 7 output channels cut into panels of TM rows (tails and all), against
    the same variant reading the weights as they are, and torch's conv2d."""
    torch = pytest.importorskip("torch", reason="torch not installed: pip install torch==2.13.0")
    from clconv.runtime import current
    from clconv.arrays import empty, on_device
    from clconv.geometry import conv_geometry

    rt = current()
    x = rng.standard_normal((2, 6, 7, 9)).astype(np.float32)
    w = rng.standard_normal((14, 3, kernel, kernel)).astype(np.float32)
    b = rng.standard_normal(14).astype(np.float32)
    geo = conv_geometry(x.shape, w.shape, 1, kernel // 2, 1, 2)
    var = algos.VARIANTS[variant]
    params = (algos.params_for(rt.profile, var, geo, "forward") if case == 0
              else gemm_algo.TEST_PARAMS[case - 1])
    if not algos.valid(rt.profile, var, geo, "forward", params):
        pytest.skip(f"{variant} {params} not valid on this device")
    xd, wd, bd = (on_device(rt, v) for v in (x, w, b))
    packed = algos.PackedForward(var, params, var.pack(rt, geo, params, wd))
    got = packed.run(rt, geo, xd, wd, bd, empty(rt, (2, 14, 7, 9)), RELU).get()
    unpacked = algos.run(rt, "forward", geo, xd, wd, bd, empty(rt, (2, 14, 7, 9)),
                         variant=var, params=params, act=RELU).get()
    want = torch.relu(torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b),
        padding=kernel // 2, groups=2)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got, unpacked, rtol=1e-5, atol=1e-5)


def test_a_prepared_layer_refuses_another_input_shape(rng):
    w = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    layer = ConstantWeightConv2d((1, 4, 8, 8), w)
    with pytest.raises(ValueError, match=r"input: this layer was prepared for shape \(1, 4, 8, 8\)"):
        layer(np.zeros((2, 4, 8, 8), np.float32))
    with pytest.raises(ValueError, match="weight"):
        ConstantWeightConv2d((1, 5, 8, 8), w)  # 5 channels against a 4-channel weight
    with pytest.raises(TypeError, match="activation"):
        ConstantWeightConv2d((1, 4, 8, 8), w, activation="relu")


def test_an_onnx_model_packs_its_constant_conv_weights_on_the_first_run(monkeypatch, rng):
    onnx = pytest.importorskip("onnx", reason="onnx not installed: pip install 'clconv[onnx]'")
    import clconv.onnx as conx
    from clconv.onnx.steps import ConvStep
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(rng.standard_normal((8, 4, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 8, 8, 8])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    counts = _winograd_launches(monkeypatch)
    x = rng.standard_normal((1, 4, 8, 8)).astype(np.float32)
    with algos.force("winograd"):
        compiled = conx.load(model)
        (step,) = [s for s in compiled.plan.steps if isinstance(s, ConvStep)]
        assert step.constant_weights
        outs = [compiled.run([x])[0] for _ in range(3)]
    assert counts["winograd_weights"] == 1
    want = np.maximum(F.conv2d(x, numpy_helper.to_array(w), padding=1).get(), 0)
    for out in outs:
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def _strided(rt, images, stride, offset, shape):
    """Strided images over a sub-buffer of a NaN-filled root, and the root."""
    import pyopencl as cl

    from clconv.arrays import strided_images
    root = cl.Buffer(rt.context, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR,
                     hostbuf=np.full(images * stride, np.nan, np.float32))
    per_image = int(np.prod(shape[1:]))
    view = strided_images(rt.queue, root.get_sub_region(
        offset * 4, ((images - 1) * stride + per_image) * 4), shape, stride)
    return view, root


@pytest.mark.parametrize("variant", ["gemm1x1", "im2col", "shifted", "winograd", "direct"])
def test_a_prepared_layer_reads_and_writes_strided_images(variant, rng):
    """A channel slice of a concatenation of several images (onnx/placement.py): the
    layer writes its output there, and reads its input from such a slice, in place or
    through a copy; the floats around the slices stay as they were."""
    import pyopencl as cl

    from clconv.arrays import image_stride, on_device
    from clconv.ops.layout import copy_images
    from clconv.runtime import current
    rt = current()
    ks = 1 if variant == "gemm1x1" else 3
    x = rng.standard_normal((3, 6, 8, 8)).astype(np.float32)
    w = rng.standard_normal((5, 6, ks, ks)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    x_view, _ = _strided(rt, 3, 16 * 64, 4 * 64, x.shape)  # channels 4-9 of 16
    copy_images(rt, x_view, on_device(rt, x))
    out_view, out_root = _strided(rt, 3, 8 * 64, 2 * 64, (3, 5, 8, 8))  # channels 2-6 of 8
    assert image_stride(x_view) == 16 * 64 and image_stride(out_view) == 8 * 64
    with algos.force(variant):
        layer = ConstantWeightConv2d(x.shape, w, b, padding=ks // 2, activation=RELU)
        assert layer._forward.variant.name == variant
        assert layer(x_view, out=out_view) is out_view
        want = F.conv2d_activation(x, w, b, padding=ks // 2, activation=RELU).get()
    host = np.empty(3 * 8 * 64, np.float32)
    cl.enqueue_copy(rt.queue, host, out_root)
    host = host.reshape(3, 8, 64)
    np.testing.assert_allclose(host[:, 2:7].reshape(want.shape), want, rtol=1e-5, atol=1e-5)
    assert np.isnan(host[:, :2]).all() and np.isnan(host[:, 7:]).all()
    with pytest.raises(ValueError, match=r"out: expected shape \(3, 5, 8, 8\), got"):
        layer(x_view, out=_strided(rt, 3, 8 * 64, 0, (3, 4, 8, 8))[0])


def test_only_a_pointwise_gemm_reads_strided_images_in_place(rng):
    from clconv.arrays import on_device
    from clconv.geometry import conv_geometry
    from clconv.runtime import current
    rt = current()
    geo = conv_geometry((2, 3, 6, 6), (4, 3, 3, 3), 1, 1, 1, 1)
    x = on_device(rt, rng.standard_normal(geo.input_shape).astype(np.float32))
    w = on_device(rt, rng.standard_normal(geo.weight_shape).astype(np.float32))
    params = algos.params_for(rt.profile, gemm_algo.IM2COL, geo, "forward")
    with pytest.raises(ValueError, match="x_image: only a pointwise convolution reads its "
                                         "input in place; make the input contiguous first"):
        gemm_algo.forward(rt, geo, params, x, w, None, None, x_image=200)


@pytest.mark.parametrize("case", range(1 + len(gemm_algo.TEST_PARAMS)))
@pytest.mark.parametrize("images,channels,outputs", [(1, 1024, 1000), (3, 37, 45), (9, 20, 33)])
def test_a_fully_connected_layer_packs_its_weights_as_gemm_columns(images, channels, outputs,
                                                                   case, rng, monkeypatch):
    """A 1x1 convolution on 1x1 planes (a classifier head) runs as `linear`: the images
    are the GEMM's rows and W^T, packed in column panels (tails and all), its columns;
    against the same variant reading W as it is, and torch."""
    torch = pytest.importorskip("torch", reason="torch not installed: pip install torch==2.13.0")
    monkeypatch.delenv(algos.ENV_ALGO, raising=False)  # the emulated tiers force direct
    from clconv.algos import linear
    from clconv.arrays import empty, on_device
    from clconv.geometry import conv_geometry
    from clconv.runtime import current

    rt = current()
    x = rng.standard_normal((images, channels, 1, 1)).astype(np.float32)
    w = rng.standard_normal((outputs, channels, 1, 1)).astype(np.float32)
    b = rng.standard_normal(outputs).astype(np.float32)
    geo = conv_geometry(x.shape, w.shape, 1, 0, 1, 1)
    assert algos.choose(rt.profile, geo, "forward", packed=True)[0] is linear.LINEAR
    assert algos.choose(rt.profile, geo, "forward")[0].name == "gemm1x1"  # weights as given
    params = (algos.params_for(rt.profile, linear.LINEAR, geo, "forward") if case == 0
              else gemm_algo.TEST_PARAMS[case - 1])
    if not algos.valid(rt.profile, linear.LINEAR, geo, "forward", params):
        pytest.skip(f"linear {params} not valid on this device")
    xd, wd, bd = (on_device(rt, v) for v in (x, w, b))
    packed = algos.PackedForward(linear.LINEAR, params, linear.pack(rt, geo, params, wd))
    got = packed.run(rt, geo, xd, wd, bd, empty(rt, (images, outputs, 1, 1)), RELU).get()
    unpacked = algos.run(rt, "forward", geo, xd, wd, bd, empty(rt, (images, outputs, 1, 1)),
                         variant=linear.LINEAR, params=params, act=RELU).get()
    want = torch.relu(torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b))).numpy()
    scale = np.abs(want).max()
    np.testing.assert_allclose(got / scale, want / scale, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got, unpacked, rtol=1e-5, atol=1e-5)


def test_a_fully_connected_layer_reads_and_writes_strided_images_and_fuses(rng, monkeypatch):
    """linear reads its input from a channel slice of a concatenation and writes its
    output into one, in place; a residual and an input batch norm (applied in a pass of
    its own: linear's GEMM reads the input as A) give the unfused result; it never
    writes inside zero borders."""
    monkeypatch.delenv(algos.ENV_ALGO, raising=False)  # the emulated tiers force direct
    import pyopencl as cl

    from clconv.arrays import on_device
    from clconv.epilogue import Activation
    from clconv.ops.layout import copy_images
    from clconv.runtime import current
    rt = current()
    x = rng.standard_normal((3, 40, 1, 1)).astype(np.float32)
    w = rng.standard_normal((20, 40, 1, 1)).astype(np.float32)
    b = rng.standard_normal(20).astype(np.float32)
    layer = ConstantWeightConv2d(x.shape, w, b, activation=RELU)
    assert layer._forward.variant.name == "linear"
    assert layer._forward.reads_strided_input() and layer._forward.writes_strided_output()
    assert not layer._forward.writes_bordered_output()
    assert not layer._forward.reads_input_affine(layer.geometry)
    want = F.conv2d_activation(x, w, b, activation=RELU).get()
    x_view, _ = _strided(rt, 3, 96, 32, x.shape)  # channels 32-71 of 96 (aligned offsets)
    copy_images(rt, x_view, on_device(rt, x))
    out_view, out_root = _strided(rt, 3, 64, 32, (3, 20, 1, 1))  # channels 32-51 of 64
    assert layer(x_view, out=out_view) is out_view
    host = np.empty(3 * 64, np.float32)
    cl.enqueue_copy(rt.queue, host, out_root)
    host = host.reshape(3, 64)
    np.testing.assert_allclose(host[:, 32:52], want.reshape(3, 20), rtol=1e-5, atol=1e-5)
    assert np.isnan(host[:, :32]).all() and np.isnan(host[:, 52:]).all()

    residual = rng.standard_normal((3, 20, 1, 1)).astype(np.float32)
    got = layer(x, residual=residual).get()
    plain = F.conv2d(x, w, b).get()
    np.testing.assert_allclose(got, np.maximum(plain + residual, 0), rtol=1e-5, atol=1e-5)

    scale = rng.standard_normal(40).astype(np.float32)
    shift = rng.standard_normal(40).astype(np.float32)
    got = layer(x, input_affine=(scale, shift, Activation("relu"))).get()
    bn = np.maximum(x * scale[:, None, None] + shift[:, None, None], 0)
    np.testing.assert_allclose(got, F.conv2d_activation(bn, w, b, activation=RELU).get(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("trans_a,trans_b,alpha,beta,c_shape", [
    (0, 1, 1.0, 1.0, (37,)), (0, 0, 1.0, 1.0, (37,)), (1, 1, 0.5, 2.0, (3, 37)),
    (0, 0, 1.5, 1.0, None)])
def test_an_onnx_gemm_packs_its_constant_b_once(monkeypatch, rng, trans_a, trans_b, alpha,
                                                 beta, c_shape):
    """A fully connected layer's weights (Gemm's B, an initializer) are packed into the
    GEMM's column panels on the first run only; every layout of B and A, alpha, beta and
    C give numpy's result, through the step-by-step run and the replay."""
    onnx = pytest.importorskip("onnx", reason="onnx not installed: pip install 'clconv[onnx]'")
    import clconv.onnx as conx
    from clconv.ops import gemm as gemm_ops
    from clconv.onnx.steps import GemmStep
    from onnx import helper, numpy_helper

    a = rng.standard_normal((70, 3) if trans_a else (3, 70)).astype(np.float32)
    b = rng.standard_normal((37, 70) if trans_b else (70, 37)).astype(np.float32)
    inits = [numpy_helper.from_array(b, "b")]
    names = ["a", "b"]
    if c_shape is not None:
        c = rng.standard_normal(c_shape).astype(np.float32)
        inits.append(numpy_helper.from_array(c, "c"))
        names.append("c")
    nodes = [helper.make_node("Gemm", names, ["g"], alpha=alpha, beta=beta,
                              transA=trans_a, transB=trans_b),
             helper.make_node("Relu", ["g"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, list(a.shape))],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3, 37])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    packs = []
    real = gemm_ops.pack_b
    monkeypatch.setattr(gemm_ops, "pack_b", lambda *args, **kw: packs.append(1) or real(*args, **kw))
    compiled = conx.load(model)
    (step,) = [s for s in compiled.plan.steps if isinstance(s, GemmStep)]
    assert step.constant_b and "B packed once" in step.describe()
    outs = [compiled.run([a])[0] for _ in range(3)]
    want = alpha * (a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b)
    if c_shape is not None:
        want = want + beta * c
    want = np.maximum(want, 0)
    for out in outs:
        np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    assert len(packs) == 1


def test_a_packed_b_gives_the_unpacked_product_and_refuses_trans_b(rng):
    from clconv.ops import gemm as gemm_ops
    a = rng.standard_normal((2, 5)).astype(np.float32)
    b = rng.standard_normal((5, 40)).astype(np.float32)  # two panels, the second partial
    packed = gemm_ops.pack_b(b, 2)
    assert packed.shape == (5, 40)
    np.testing.assert_allclose(gemm_ops.gemm(a, packed).get(), a @ b, rtol=1e-5, atol=1e-5)
    packed_t = gemm_ops.pack_b(np.ascontiguousarray(b.T), 2, trans_b=True)
    np.testing.assert_allclose(gemm_ops.gemm(a, packed_t).get(), a @ b, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="trans_b: a PackedB is B as packed"):
        gemm_ops.gemm(a, packed, trans_b=True)
