"""The Raspberry Pi OS journey of docs/pi.md, end to end, on the image of
pi/build-os-image.sh (laid out like Raspberry Pi OS, Debian inside):

    resize-image.sh IMG +1G --pow2 -o rpi.img
    extract-boot.sh rpi.img boot/ --enable-ssh --user pi:PASSWORD
    run-qemu.sh boot/rpi.img [--model pi2] --user pi:PASSWORD -- 'clconv check && python3 -c ...'

It asserts the remote command's exit status and output, that the guest shut
down by itself (QEMU exited after the reboot), and that neither the built
image nor the user's resized one changed.  Each step's time is printed (run
with -s to see them).  Marked `emulation`: a booted raspi3b/raspi2b under
QEMU's TCG takes many minutes, so the normal suite leaves it out; run it with

    python3 -m pytest tests/pi/test_os_journey.py -m emulation -s

CLCONV_PI_JOURNEY_TIMEOUT (seconds, default 3600) bounds the QEMU run.
"""
import os
import socket
import time

import pytest

from test_pi_scripts import IMAGE_TOOLS, need, run, sha256

PASSWORD = "raspberry"
# What the guest runs: the library's self-check on POCL, then a convolution
# through the installed package, printing a marker with the device and a value.
REMOTE = ("clconv check && python3 -c \"import clconv, numpy as np; "
          "from clconv import functional as F; "
          "x = np.arange(32, dtype=np.float32).reshape(1, 2, 4, 4); "
          "w = np.ones((3, 2, 3, 3), np.float32); "
          "y = F.conv2d(x, w, padding=1).get(); "
          "print('JOURNEY-OK', clconv.__file__, y.shape, float(y[0, 0, 1, 1]))\"")
# x channel 0 at (1,1)'s 3x3 window: 0+1+2+4+5+6+8+9+10 = 45; channel 1 adds 16 per value: 45 + 144.
EXPECTED_CENTRE = 45.0 + (45.0 + 9 * 16)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(label, timings, *args, timeout):
    t = time.monotonic()
    r = run(*args, timeout=timeout)
    timings[label] = time.monotonic() - t
    print(f"journey: {label}: {timings[label]:.0f} s (exit {r.returncode})", flush=True)
    return r


@pytest.mark.emulation
@pytest.mark.parametrize("arch,model", [("arm64", "pi3"), ("armhf", "pi2")])
def test_os_journey(tmp_path, arch, model):
    need(*IMAGE_TOOLS, "mmdebstrap", "openssl", "ssh",
         "qemu-system-aarch64" if arch == "arm64" else "qemu-system-arm")
    if os.geteuid() != 0 and not os.environ.get("CLCONV_PI_OS_IMAGE"):
        pytest.skip("building the OS image needs root (mmdebstrap, binfmt_misc)")
    timings = {}
    r = timed("build-os-image.sh (cached after the first run)", timings,
              "build-os-image.sh", "--arch", arch, timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    image = r.stdout.strip().splitlines()[-1]
    image_hash = sha256(image)

    rpi = tmp_path / "rpi.img"
    r = timed("resize-image.sh IMG +1G --pow2", timings,
              "resize-image.sh", image, "+1G", "--pow2", "-o", rpi, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    size = rpi.stat().st_size
    assert size & (size - 1) == 0 and size > os.path.getsize(image)

    r = timed("extract-boot.sh --enable-ssh --user", timings,
              "extract-boot.sh", rpi, tmp_path / "boot", "--enable-ssh", "--user", f"pi:{PASSWORD}",
              timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    prepared = r.stdout.strip().splitlines()[-1]
    assert prepared == str(tmp_path / "boot" / "rpi.img")
    kernel = "kernel8.img" if arch == "arm64" else "kernel7.img"
    for f in (kernel, "cmdline.txt", "config.txt"):
        assert (tmp_path / "boot" / f).is_file(), f
    prepared_hash = sha256(prepared)

    limit = int(os.environ.get("CLCONV_PI_JOURNEY_TIMEOUT", "3600"))
    r = timed(f"run-qemu.sh --model {model} (boot, SSH, command, shutdown)", timings,
              "run-qemu.sh", prepared, "--model", model, "--ssh-port", free_port(),
              "--user", f"pi:{PASSWORD}", "--timeout", limit, "--boot-timeout", limit,
              "--", REMOTE, timeout=limit + 300)
    out = r.stdout + r.stderr
    print(out[-4000:])
    assert r.returncode == 0, out[-6000:]
    assert "JOURNEY-OK /usr/local/lib/python3" in r.stdout
    assert f"(1, 3, 4, 4) {EXPECTED_CENTRE}" in r.stdout
    assert "guest shut down: QEMU exited" in r.stderr, "the guest did not power off by itself"
    assert sha256(image) == image_hash, "build-os-image.sh's image changed"
    assert sha256(prepared) == prepared_hash, "run-qemu.sh changed the image it was given"
    print("journey timings:", {k: round(v) for k, v in timings.items()})
