#!/usr/bin/env python3
"""Compile every distinct OpenCL program in clconv build logs with VC4C: the gate that
says whether VC4CL (the Raspberry Pi 0-3 GPU driver) can build what clconv asks of it.

usage: compile-programs.py [--vc4c PATH] [--jobs 2] [--timeout S] LOG [LOG ...]

A LOG is what `CLCONV_BUILD_LOG=LOG` makes clconv write: one JSON line per program
built, {"file": "gemm.cl", "options": ["-cl-std=CL1.2", "-DTM=4", ...], "device": ...}.
Programs are deduplicated on (file, options), less the defines that neither the file
nor a header it includes names (they cannot change the program). By default only a cover
is compiled: per file, programs chosen so that every pair of define values that the logs
show together appears together at least once (`--cover pairs`, see cover()); `--cover
values` asks only for every value, `--cover all` (or `--all`) compiles every distinct
program. Each is compiled as
VC4CL compiles it: `vc4c --quiet --bin -o OUT <options> -I<kernels_cl> <kernels_cl/file>`
(vc4c takes `-I` and `-D` glued to their value; a separate word is read as an input file).
Passes are cached under ~/.cache/clconv/vc4c-results (CLCONV_VC4C_RESULTS overrides),
keyed by the sha256 of the compiler (vc4c and the libVC4CC.so beside it), the options,
the source file and every kernels_cl header, so a rerun compiles only what changed.
Failures are never cached. Near VC4C's register limit the same compile may pass on one
try and fail on the next (pi/vc4c/README.md); `--fresh` ignores the cache to look again. Exit status: 0 all compiled, 1 some failed, 2 bad input (no
log, a malformed line, no vc4c).
Standard library only: it runs before anything else is installed.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KERNELS = REPO / "kernels_cl"
CACHE = Path(os.environ.get("CLCONV_VC4C_RESULTS")
             or Path.home() / ".cache" / "clconv" / "vc4c-results")
# the defines every program gets from the device profile: left out of the table
PROFILE_DEFINES = ("-DCLCONV_MAX_WORK_GROUP_SIZE=", "-DCLCONV_LOCAL_MEM_SIZE=")


# --cover: the strength of the cover (how many define values must appear together)
COVERS = {"values": 1, "pairs": 2, "all": None}
COVER_WORDS = {"values": "a cover of every define value; --cover all for all",
               "pairs": "a cover of every pair of define values; --cover all for all",
               "all": "all"}


class BadInput(Exception):
    pass


@dataclass(frozen=True)
class Program:
    file: str
    options: tuple[str, ...]

    @property
    def digest(self) -> str:
        return hashlib.sha256("\0".join(self.options).encode()).hexdigest()[:8]

    @property
    def short(self) -> str:
        """The options that tell programs apart: the defines, less the profile's."""
        return " ".join(o[2:] for o in self.options
                        if o.startswith("-D") and not o.startswith(PROFILE_DEFINES))


@dataclass
class Result:
    program: Program
    ok: bool
    result: str  # ok, cached, fail(rc), timeout
    seconds: float
    error: str = ""


def read_logs(paths, kernels: Path = KERNELS) -> list[Program]:
    """The distinct programs of the logs, in order of first appearance."""
    seen: dict[Program, None] = {}
    for path in paths:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as error:
            raise BadInput(f"build log {path}: {error.strerror}") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                program = Program(entry["file"], tuple(vc4c_options(entry["options"])))
            except (ValueError, KeyError, TypeError) as error:
                raise BadInput(f"{path}:{n}: not a build-log line ({error}): {line[:120]}") from None
            if "/" in program.file or not (kernels / program.file).is_file():
                raise BadInput(f"{path}:{n}: no kernel file {program.file!r} in {kernels}")
            seen.setdefault(program, None)
    used = {}
    for program in seen:
        if program.file not in used:
            used[program.file] = used_macros(kernels, program.file)
    return list(dict.fromkeys(without_unused_defines(p, used[p.file]) for p in seen))


def used_macros(kernels: Path, file: str, _seen=None) -> set[str]:
    """The identifiers of `file` and of the kernels_cl headers it includes, recursively:
    a -D define none of them names cannot change the program."""
    seen = set() if _seen is None else _seen
    if file in seen or not (kernels / file).is_file():
        return set()
    seen.add(file)
    text = (kernels / file).read_text()
    names = set(re.findall(r"\b[A-Za-z_]\w*\b", text))
    for header in re.findall(r'#\s*include\s*"([^"]+)"', text):
        names |= used_macros(kernels, header, seen)
    return names


def without_unused_defines(program: Program, used: set[str]) -> Program:
    keep = [o for o in program.options
            if not o.startswith("-D") or o[2:].split("=", 1)[0] in used]
    return Program(program.file, tuple(keep))


def define_values(program: Program) -> set[tuple[str, str]]:
    return {tuple(o[2:].split("=", 1)) if "=" in o else (o[2:], "1")
            for o in program.options if o.startswith("-D")}


def cover(programs: list[Program], strength: int = 2) -> list[Program]:
    """Per file, a subset of the programs (a greedy set cover) in which every value each
    define takes in the logs appears, and with strength 2 every pair of values that
    appears together in some logged program appears together in a chosen one too
    (pairwise or "all-pairs" testing: a failure that needs two defines at once, such as
    a wide window with a wide tile, is caught). Where the choice is free the largest
    numbers come first: bigger compiled-in windows and tiles unroll into more code, where
    VC4C's register allocator fails first. What it leaves out: combinations of three or
    more values that no chosen program has (`--cover all` compiles every program)."""
    by_file: dict[str, list[Program]] = {}
    for program in programs:
        by_file.setdefault(program.file, []).append(program)
    chosen = []
    for group in by_file.values():
        # a define a program leaves out takes the file's default: a value of its own
        names = {name for p in group for name, _ in define_values(p)}
        values, units = {}, {}
        for p in group:
            given = define_values(p)
            values[p] = given | {(n, "(default)") for n in names - {n for n, _ in given}}
            units[p] = {frozenset(combo) for k in range(1, strength + 1)
                        for combo in itertools.combinations(sorted(values[p]), k)}
        left = set().union(*units.values())

        def weight(p, values=values):
            return sum(int(v) for _, v in values[p] if v.lstrip("-").isdigit())

        while left:
            best = max(group, key=lambda p: (len(units[p] & left), weight(p)))
            chosen.append(best)
            left -= units[best]
        if not any(values.values()):  # a file built without defines
            chosen.append(group[0])
    order = {p: i for i, p in enumerate(programs)}
    return sorted(set(chosen), key=order.__getitem__)


def vc4c_options(options) -> list[str]:
    """The log's options as VC4C takes them: each a single word, `-D X` glued to `-DX`;
    an include path is dropped (the kernels folder is added to every compile)."""
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise TypeError("options is not a list of strings")
    out, words = [], iter(options)
    for word in words:
        if word in ("-D", "-I"):
            value = next(words, None)
            if value is None:
                raise ValueError(f"{word} without a value")
            if word == "-D":
                out.append("-D" + value)
        elif not word.startswith("-I"):
            out.append(word)
    return out


def find_vc4c(explicit: str | None) -> Path:
    candidates = [explicit, os.environ.get("VC4C")]
    if os.environ.get("VC4C_PREFIX"):
        candidates.append(os.path.join(os.environ["VC4C_PREFIX"], "bin", "vc4c"))
    candidates.append(shutil.which("vc4c"))
    for candidate in candidates:
        if candidate:
            path = Path(candidate)
            if path.is_file() and os.access(path, os.X_OK):
                return path.resolve()
            if candidate in (explicit, os.environ.get("VC4C")):
                raise BadInput(f"vc4c: {candidate} is not an executable file")
    raise BadInput("no vc4c: pass --vc4c PATH or set VC4C "
                   "(pi/vc4c/ensure-vc4c.sh prints a prefix holding bin/vc4c)")


def file_hash(path: Path) -> bytes:
    return hashlib.sha256(path.read_bytes()).digest()


def compiler_hash(vc4c: Path) -> bytes:
    """vc4c and the compiler library it runs (libVC4CC.so in ../lib, where installed)."""
    h = hashlib.sha256(file_hash(vc4c))
    for lib in sorted((vc4c.parent.parent / "lib").glob("libVC4CC.so*")):
        if lib.is_file():
            h.update(file_hash(lib))
    return h.digest()


def cache_key(compiler: bytes, program: Program, kernels: Path) -> str:
    h = hashlib.sha256(compiler)
    h.update("\0".join(program.options).encode() + b"\1")
    for path in [kernels / program.file] + sorted(kernels.glob("*.h")):
        h.update(path.name.encode() + b"\0" + file_hash(path))
    return h.hexdigest()


def first_error(log: str) -> str:
    """The first line that says error (clang diagnostics, VC4C's [E] lines, exceptions),
    else the last non-empty line; colour codes and stack-trace lines left out."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in log.splitlines()]
    lines = [line for line in lines if line.strip() and not re.search(r": +\(\d+\) ", line)]
    for pattern in (r"error:|threw exception|what\(\)", r"\[E\]|rror"):
        for line in lines:
            if re.search(pattern, line):
                return re.sub(r"^\[E\] \w{3} \w{3} +\d+ [\d:]+ \d+: ", "", line).strip()[:240]
    return lines[-1].strip()[:240] if lines else ""


def compile_one(vc4c: Path, program: Program, kernels: Path, timeout: float, key: str,
                cache: Path, keep: Path | None, fresh: bool = False, tries: int = 1) -> Result:
    """Compile `program`, up to `tries` times while VC4C reports a failure: near its
    register limit VC4C's result varies from one try to the next (it compiles a
    program's kernels on a thread pool), and clconv retries a failed build on VC4CL
    as many times (build.VC4CL_BUILD_TRIES), so a program that compiles within the
    tries is what a Pi gets. A timeout is not retried."""
    marker = cache / key
    if marker.is_file() and not fresh:
        return Result(program, True, "cached", 0.0)
    with tempfile.TemporaryDirectory(prefix="vc4c-") as tmp:
        out = Path(tmp) / "program.bin"
        command = [str(vc4c), "--quiet", "--bin", "-o", str(out), *program.options,
                   f"-I{kernels}", str(kernels / program.file)]
        start = time.monotonic()
        for attempt in range(1, tries + 1):
            try:
                done = subprocess.run(command, cwd=tmp, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      timeout=timeout)
                log = done.stdout.decode(errors="replace")
                ok = done.returncode == 0 and out.is_file() and out.stat().st_size > 0
                result = ("ok" if attempt == 1 else f"ok(try{attempt})") if ok \
                    else f"fail({done.returncode})"
            except subprocess.TimeoutExpired as expired:
                log = (expired.stdout or b"").decode(errors="replace")
                ok, result = False, "timeout"
                log += f"\n[timed out after {timeout:.0f} s]"
                break
            if ok:
                break
        seconds = time.monotonic() - start
    if ok:
        cache.mkdir(parents=True, exist_ok=True)
        tmp_marker = marker.with_name(f"{key}.{os.getpid()}.tmp")
        tmp_marker.write_text(json.dumps({"file": program.file, "options": program.options,
                                          "seconds": round(seconds, 1)}) + "\n")
        tmp_marker.replace(marker)
        return Result(program, True, result, seconds)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        stem = f"{Path(program.file).stem}-{program.digest}"
        (keep / f"{stem}.log").write_text(" ".join(command) + "\n\n" + log)
    return Result(program, False, result, seconds, first_error(log))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", nargs="+", metavar="LOG", help="CLCONV_BUILD_LOG files")
    parser.add_argument("--vc4c", help="the vc4c binary (default $VC4C, "
                        "$VC4C_PREFIX/bin/vc4c, or vc4c on PATH)")
    parser.add_argument("--jobs", type=int, default=2, help="compiles at once (default 2)")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds per program (default 300)")
    parser.add_argument("--kernels", type=Path, default=KERNELS,
                        help=f"the kernel sources (default {KERNELS})")
    parser.add_argument("--cover", choices=sorted(COVERS), default="pairs",
                        help="which programs to compile: every distinct one (all), or a "
                        "subset in which every pair of define values seen together "
                        "(pairs, the default) or every define value (values) appears; "
                        "see cover()")
    parser.add_argument("--all", action="store_const", dest="cover", const="all",
                        help="the same as --cover all")
    parser.add_argument("--tries", type=int, default=5,
                        help="compiles of a program that VC4C fails before it counts as "
                             "failed (default 5: clconv tries a build on VC4CL as often, "
                             "build.VC4CL_BUILD_TRIES)")
    parser.add_argument("--fresh", action="store_true",
                        help="compile again what the cache holds as passed")
    parser.add_argument("--failures", type=Path,
                        help="folder for each failed program's command and vc4c output")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        if args.jobs < 1 or args.timeout <= 0 or args.tries < 1:
            raise BadInput(f"--jobs and --tries must be >= 1 and --timeout > 0, got "
                           f"{args.jobs}, {args.tries}, {args.timeout}")
        if not (args.kernels / "conv2d.cl").is_file():
            raise BadInput(f"--kernels: {args.kernels} holds no clconv kernels")
        kernels = args.kernels.resolve()
        programs = read_logs(args.logs, kernels)
        vc4c = find_vc4c(args.vc4c)
    except BadInput as error:
        print(f"compile-programs.py: {error}", file=sys.stderr)
        return 2
    if not programs:
        print("compile-programs.py: the logs list no program", file=sys.stderr)
        return 2
    compiler = compiler_hash(vc4c)
    distinct = len(programs)
    if args.cover != "all":
        programs = cover(programs, COVERS[args.cover])
    print(f"{distinct} distinct programs, {len(programs)} compiled "
          f"({COVER_WORDS[args.cover]}); "
          f"vc4c {vc4c}, {args.jobs} at a time, {args.timeout:.0f} s each at most",
          flush=True)
    header = f"{'file':<32} {'options':<8} {'result':<8} {'seconds':>7}  first error line / defines"
    print(header + "\n" + "-" * len(header), flush=True)

    def run(program):
        result = compile_one(vc4c, program, kernels, args.timeout,
                             cache_key(compiler, program, kernels), CACHE, args.failures,
                             args.fresh, args.tries)
        detail = result.error if not result.ok else program.short
        print(f"{program.file:<32} {program.digest:<8} {result.result:<8} "
              f"{result.seconds:7.1f}  {detail[:200]}", flush=True)
        return result

    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(run, programs))
    failed = [r for r in results if not r.ok]
    cached = sum(r.result == "cached" for r in results)
    retried = [r for r in results if r.result.startswith("ok(try")]
    if retried:
        print(f"\n{len(retried)} compiled only after VC4C failed them first "
              f"(its result varies near the register limit):")
        for r in retried:
            print(f"  {r.program.file} {r.program.digest} {r.result}: {' '.join(r.program.options)}")
    if failed:
        print("\nfailed programs (file, options):")
        for r in failed:
            print(f"  {r.program.file} {r.program.digest}: {' '.join(r.program.options)}")
    print(f"\n{len(results) - len(failed)} compiled ({cached} from the cache), "
          f"{len(failed)} failed, of {len(results)} programs; "
          f"compile time {sum(r.seconds for r in results):.0f} s, "
          f"wall time {time.monotonic() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
