"""Output-size and padding rules against torch, over hypothesis-generated parameters."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clconv import params


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 40), kernel=st.integers(1, 7), stride=st.integers(1, 4),
       padding=st.integers(0, 3), dilation=st.integers(1, 3), ceil_mode=st.booleans())
def test_pool_output_size_matches_torch(size, kernel, stride, padding, dilation, ceil_mode):
    torch = pytest.importorskip("torch")
    if padding > kernel // 2:
        return  # torch rejects it, and so do the ops (tests/test_validation.py)
    ours = params.pool_output_size(size, kernel, stride, padding, dilation, ceil_mode)
    x = torch.zeros(1, 1, size, size)
    try:
        theirs = torch.nn.functional.max_pool2d(x, kernel, stride, padding, dilation,
                                                ceil_mode).shape[-1]
    except RuntimeError:  # torch: output would be empty
        assert ours <= 0
        return
    assert ours == theirs


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 30), kernel=st.integers(1, 6), stride=st.integers(1, 4),
       dilation=st.integers(1, 3), padding=st.one_of(st.integers(0, 4), st.just("same"),
                                                     st.just("valid")))
def test_conv_output_size_and_same_padding_match_torch(size, kernel, stride, dilation, padding):
    torch = pytest.importorskip("torch")
    if padding == "same" and stride != 1:
        return
    (top, bottom), _ = params.conv_padding(padding, (kernel, kernel), (dilation, dilation),
                                           (stride, stride))
    ours = params.conv_output_size(size, kernel, stride, top, bottom, dilation)
    x, w = torch.zeros(1, 1, size, size), torch.zeros(1, 1, kernel, kernel)
    try:
        theirs = torch.nn.functional.conv2d(x, w, None, stride, padding, dilation).shape[-1]
    except RuntimeError:
        assert ours <= 0
        return
    assert ours == theirs


@given(size=st.integers(1, 20), kernel=st.integers(1, 5), stride=st.integers(1, 3),
       padding=st.integers(0, 2), dilation=st.integers(1, 2), output_padding=st.integers(0, 2))
@settings(max_examples=200, deadline=None)
def test_conv_transpose_output_size_matches_torch(size, kernel, stride, padding, dilation,
                                                  output_padding):
    torch = pytest.importorskip("torch")
    if output_padding >= max(stride, dilation):
        return
    ours = params.conv_transpose_output_size(size, kernel, stride, padding, output_padding,
                                             dilation)
    x, w = torch.zeros(1, 1, size, size), torch.zeros(1, 1, kernel, kernel)
    try:
        theirs = torch.nn.functional.conv_transpose2d(x, w, None, stride, padding,
                                                      output_padding, 1, dilation).shape[-1]
    except RuntimeError:
        assert ours <= 0
        return
    assert ours == theirs


def test_pair_rejects_bools_floats_and_bad_lengths():
    with pytest.raises(TypeError, match="stride: expected an int or a pair of ints"):
        params.pair("stride", True)
    with pytest.raises(TypeError, match="stride"):
        params.pair("stride", (1, 2, 3))
    with pytest.raises(TypeError, match="stride"):
        params.pair("stride", 1.5)
    assert params.pair("stride", [2]) == (2, 2)
