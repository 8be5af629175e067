"""First builds are quiet: clang's "N warnings generated." tally (which POCL's compiler
prints straight to stderr) and pyopencl's generic CompilerWarning are dropped, while a
real compiler warning is shown once, naming the .cl file."""
import uuid
import warnings

import pyopencl as cl
import pytest

from clconv import build, runtime


def _fresh_build(tmp_path, body):
    # a unique comment defeats POCL's kernel cache, so the compiler really runs
    path = tmp_path / "probe.cl"
    path.write_text(f"// {uuid.uuid4()}\n{body}\n__kernel void k(__global float *x) "
                    "{ x[get_global_id(0)] = 1.0f; }\n")
    rt = runtime.current()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kernels = build._build(rt.context, path, build.BASE_OPTIONS)
    assert "k" in kernels
    return [w for w in caught if issubclass(w.category, cl.CompilerWarning)]


def test_a_clean_first_build_prints_and_warns_nothing(tmp_path, capfd):
    assert _fresh_build(tmp_path, "") == []
    captured = capfd.readouterr()
    assert "generated" not in captured.err and captured.err.strip() == ""


def test_a_real_compiler_warning_is_shown_once_with_the_file_name(tmp_path, capfd):
    caught = _fresh_build(tmp_path, '#warning "clconv-probe-warning"')
    if not caught:
        pytest.skip("this OpenCL compiler does not report #warning in its build log")
    assert len(caught) == 1
    text = str(caught[0].message)
    # the diagnostic once (NVIDIA's log also quotes the source line, as clang can)
    diagnostics = [line for line in text.splitlines() if "clconv-probe-warning" in line
                   and not line.lstrip().startswith("#warning")]
    assert "probe.cl" in text and len(diagnostics) == 1
    assert "generated" not in text and "PYOPENCL_COMPILER_OUTPUT" not in text
    assert "generated" not in capfd.readouterr().err


def test_only_the_tally_and_repeats_are_dropped():
    log = ("warning: a.cl:1:2: unused variable 'x'\n1 warning generated.\n"
           "warning: a.cl:1:2: unused variable 'x'\n\n12 warnings generated.\n")
    assert build._real_compiler_output(log) == "warning: a.cl:1:2: unused variable 'x'"
    assert build._real_compiler_output("1 warning generated.\n") == ""


def test_nvidias_per_kernel_inlining_note_is_dropped():
    """NVIDIA's drivers (550 and later) log this for every kernel of every program."""
    note = ("(): Warning: Function relu_backward is a kernel, so overriding noinline "
            "attribute. The function may be inlined when called.")
    real = "<kernel>:2:2: warning: \"clconv-probe-warning\""
    assert build._real_compiler_output(f"{note}\n{real}\n{note}") == real


def test_clangs_abi_note_for_float16_without_avx512_is_dropped():
    """POCL on an AVX2 CPU: clang's -Wpsabi note for every float16 helper (exact text
    from POCL 3.1 compiling for haswell); a real warning beside it stays."""
    notes = (
        "warning: /root/.cache/pocl/kcache/tempfile_ERhpqS.cl:54:35 <Spelling=/lib/x86_64-"
        "linux-gnu/../../share/pocl/include/_builtin_renames.h:812:20>: AVX vector return "
        "of type 'float16' (vector of 16 'float' values) without 'avx512f' enabled changes "
        "the ABI",
        "warning: /work/main/kernels_cl/activation.h:64:1 <Spelling=/lib/x86_64-linux-gnu/"
        "../../share/pocl/include/_builtin_renames.h:177:24>: AVX vector argument of type "
        "'__private float16' (vector of 16 'float' values) without 'avx512f' enabled "
        "changes the ABI",
    )
    real = "warning: a.cl:1:2: unused variable 'x'"
    assert build._real_compiler_output("\n".join((notes[0], real, notes[1]))) == real
