"""`clconv bench`: conv2d GFLOP/s per layer against PyTorch CPU and tinygrad DEV=CL."""
import json
import platform
import sys
from typing import NamedTuple

from ..atomic_file import atomic_write
from . import EXIT_OK, EXIT_USAGE, options

# An older x86 vector ISA a newer CPU can hold every peer to, so that one machine also
# measures the older class (issue: speed on AVX2 as well as AVX-512): POCL compiles for
# a CPU of that ISA with its kernel library (tinygrad DEV=CL runs on POCL too), PyTorch
# dispatches its ATen and oneDNN kernels for it.
class HeldIsa(NamedTuple):
    settings: dict   # environment variable: value
    flags: tuple     # the CPU flags (/proc/cpuinfo) the ISA needs


HELD_ISAS = {
    "avx2": HeldIsa({"POCL_LLVM_CPU_NAME": "haswell", "POCL_KERNELLIB_NAME": "avx2",
                     "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
                    ("avx2", "fma")),
}


def register(subparsers):
    parser = subparsers.add_parser(
        "bench", help="measure conv2d forward and forward+backward GFLOP/s on a layer suite, "
                      "side by side with PyTorch CPU and tinygrad DEV=CL when installed")
    parser.add_argument("--suite", choices=("default", "smoke"), default="default",
                        help="layer suite (default: LeNet, ResNet-18, MobileNet, VGG, "
                             "stride-2 and dilated layers; smoke: one tiny layer)")
    parser.add_argument("--layer", action="append", metavar="NAME",
                        help="only this layer of the suites (repeatable)")
    parser.add_argument("--rounds", type=options.positive_int, default=3,
                        help="rounds; the best round counts (default 3)")
    parser.add_argument("--min-time", type=options.positive_float, default=0.05,
                        help="seconds of calls per implementation per round (default 0.05)")
    parser.add_argument("--no-torch", action="store_true", help="do not measure PyTorch")
    parser.add_argument("--no-tinygrad", action="store_true", help="do not measure tinygrad")
    parser.add_argument("--json", metavar="PATH", help="write the numbers as JSON")
    parser.add_argument("--hold-isa", choices=sorted(HELD_ISAS),
                        help="hold POCL and PyTorch to this older x86 ISA, to measure a "
                             "CPU of that class on a newer one (sets their target-CPU "
                             "settings: POCL_LLVM_CPU_NAME, ATEN_CPU_CAPABILITY, ...)")
    parser.add_argument("--plot", metavar="PNG",
                        help="draw GFLOP/s per layer against the peers (needs matplotlib: "
                             "pip install 'clconv[bench]')")
    parser.set_defaults(func=run)


def _cpuinfo(*keys: str) -> str | None:
    """The first /proc/cpuinfo line's value whose name starts with one of `keys`."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(keys):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags (x86 "flags", ARM "Features"), empty where none are read."""
    return set((_cpuinfo("flags", "Features") or "").split())


def hold_isa(isa: str, environ, flags: set[str], loaded: bool) -> str | None:
    """Set `environ` to hold POCL and PyTorch to `isa` (HELD_ISAS); returns why it
    cannot, or None. `loaded`: OpenCL or PyTorch already started in this process, which
    then read their settings already."""
    settings, needs = HELD_ISAS[isa].settings, HELD_ISAS[isa].flags
    missing = [flag for flag in needs if flag not in flags]
    if missing:
        return (f"--hold-isa {isa}: this CPU lacks {', '.join(missing)} "
                f"(flags needed: {', '.join(needs)})")
    for name, value in settings.items():
        if environ.get(name, "").strip() not in ("", value):
            return (f"--hold-isa {isa}: {name}={environ[name]} is set; it sets {value}: "
                    f"unset {name}")
    if loaded:
        return (f"--hold-isa {isa}: OpenCL or PyTorch already started in this process; "
                f"run clconv bench in a process of its own")
    environ.update(settings)
    return None


def run(args) -> int:
    import os

    from ..device import opencl_started

    if args.hold_isa:
        reason = hold_isa(args.hold_isa, os.environ, cpu_flags(),
                          opencl_started() or "torch" in sys.modules)
        if reason is not None:
            print(f"clconv bench: error: {reason}", file=sys.stderr)
            return EXIT_USAGE

    # OpenMP threads that spin after each torch call starve POCL's threads and, with
    # POCL's threads about, make torch itself ~20x slower here: let them sleep instead.
    # (libgomp reads this when torch loads, which is below.)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # lazy: keeps CLI start-up fast (hides no import cycle)
    from .. import bench
    from ..runtime import current

    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("clconv bench: --plot needs matplotlib: pip install 'clconv[bench]' "
                  "(or pip install matplotlib)", file=sys.stderr)
            return EXIT_USAGE
    try:
        layers = bench.pick_layers(args.suite, args.layer)
    except ValueError as error:
        print(f"clconv bench: {error}", file=sys.stderr)
        return EXIT_USAGE
    rt = current()
    p = rt.profile
    cpus = os.cpu_count()
    print(f"device:  {p.label} ({p.kind.name}, driver {p.driver_version})"
          + (f", limits imitate {p.limits_name}" if p.limits_name else ""))
    print(f"machine: {machine()}, {cpus} logical CPUs, {platform.system()} {platform.release()}")
    if args.hold_isa:
        print(f"held:    every peer to {args.hold_isa.upper()} ("
              + ", ".join(f"{k}={v}" for k, v in HELD_ISAS[args.hold_isa].settings.items()) + ")")
    status = bench.peers_available(not args.no_torch, not args.no_tinygrad)
    for name, reason in status.items():
        print(f"peer {name}: " + ("measured in the same run" if reason is None
                                   else f"skipped: {reason}"))
    if status.get("torch", "") is None:
        import torch
        print(f"torch {torch.__version__}: {torch.get_num_threads()} threads, "
              f"{torch.backends.cpu.get_cpu_capability()} kernels, "
              f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    peers = {n: r for n, r in status.items() if r is None}
    results = []
    for layer in layers:
        print(f"  {layer.name} ...", file=sys.stderr, flush=True)
        result = bench.run_layer(layer, peers, rounds=args.rounds, min_time=args.min_time)
        for name, error in result.get("peer_errors", {}).items():
            print(f"  {layer.name}: peer {name} failed: {error}", file=sys.stderr)
        results.append(result)
    measured = [n for n in peers if any(f"fwd_gflops_{n}" in r for r in results)]
    summary = bench.summarise(results, measured)
    print()
    print(bench.format_table(results, summary, measured))
    if args.json:
        data = {"device": p.label, "driver": p.driver_version, "limits": p.limits_name,
                "machine": machine(), "held_isa": args.hold_isa, "cpus": cpus, "peers": status,
                "layers": results, "summary": summary}
        with atomic_write(args.json, "w") as f:
            json.dump(data, f, indent=1)
        print(f"wrote {args.json}")
    if args.plot:
        bench.plot(results, measured, args.plot)
        print(f"wrote {args.plot}")
    return EXIT_OK
