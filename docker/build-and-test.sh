#!/usr/bin/env bash
# Build both images and run a short real command in each, timing every step.
set -euo pipefail

PROG=${0##*/}
usage() {
    cat <<EOF
Usage: $PROG [--engine podman|docker] [--extras EXTRAS] [--ca-cert FILE]
             [--os-image IMG] [--pi-command CMD] [--ssh-port N]

Builds docker/Dockerfile (tag clconv) and docker/Dockerfile.pi-emulator
(tag clconv-pi-emulator) and runs in them, each step timed:
  0. debian:bookworm, when the engine lacks it, from Debian's apt mirror
     (no image registry needed):
       mmdebstrap --variant=minbase bookworm - | ENGINE import - debian:bookworm
  1. build clconv; 2. run \`clconv check\` in it; 3. with the test extras
     (the default), run pytest -q tests/test_ops.py -k conv2d -x in it
     (the image's CMD, the whole suite, takes far longer);
  4. build clconv-pi-emulator; 5. with --os-image, boot that Pi OS image
     (e.g. from pi/build-os-image.sh, mounted read-only) and run --pi-command
     (default: clconv check) over SSH as pi:raspberry.

Options:
  --engine E       podman (default when installed) or docker
  --extras E       pip extras of the clconv image (default: test; "" = none)
  --ca-cert FILE   CA bundle for pip behind a TLS-re-signing proxy (podman:
                   mounted at build time, --build-arg PIP_CERT)
  --os-image IMG   Raspberry Pi OS image (size a power of two) for step 5
  --pi-command C   command run in the emulated Pi (default: clconv check)
  --ssh-port N     guest SSH port inside the emulator container (default 2222)
Environment: CLCONV_BUILD_OPTS / CLCONV_RUN_OPTS, extra engine options split
on spaces, e.g. for podman as root inside another container:
  CLCONV_BUILD_OPTS="--isolation=chroot --network=host"
  CLCONV_RUN_OPTS="--runtime runc --network=host --ulimit nofile=20000:20000 --ulimit nproc=4096:4096"
Exit status: 0 all steps passed, 1 a step failed, 2 bad usage, 3 missing tool.
EOF
}

die() { printf '%s: error: %s\n' "$PROG" "$1" >&2; exit "${2:-2}"; }

engine="" extras=test ca_cert="" os_image="" pi_command="clconv check" ssh_port=2222
while (($#)); do
    case $1 in
        -h|--help) usage; exit 0 ;;
        --engine|--extras|--ca-cert|--os-image|--pi-command|--ssh-port)
            (($# >= 2)) || die "$1 needs a value"
            case $1 in
                --engine) engine=$2 ;; --extras) extras=$2 ;; --ca-cert) ca_cert=$2 ;;
                --os-image) os_image=$2 ;; --pi-command) pi_command=$2 ;; --ssh-port) ssh_port=$2 ;;
            esac
            shift 2 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

if [[ -z $engine ]]; then
    if command -v podman >/dev/null; then engine=podman; else engine=docker; fi
fi
case $engine in podman|docker) ;; *) die "--engine must be podman or docker, got: $engine" ;; esac
command -v "$engine" >/dev/null || die "missing tool: $engine (Debian package: ${engine/docker/docker.io})" 3
[[ -z $ca_cert || -r $ca_cert ]] || die "--ca-cert: cannot read $ca_cert"
[[ -z $ca_cert || $engine == podman ]] || die "--ca-cert needs --engine podman (docker build has no -v)"
[[ -z $os_image || -r $os_image ]] || die "--os-image: cannot read $os_image"
[[ $ssh_port =~ ^[0-9]+$ ]] || die "--ssh-port must be a number, got: $ssh_port"

read -r -a build_opts <<<"${CLCONV_BUILD_OPTS:-}"
read -r -a run_opts <<<"${CLCONV_RUN_OPTS:-}"
cd "$(dirname "$0")/.."

summary=()
# step NAME CMD...: run, time, record; stop at the first failure
step() {
    local name=$1 start rc=0
    shift
    printf '\n== %s\n' "$name"
    start=$SECONDS
    "$@" || rc=$?
    summary+=("$(printf '%5d s  %s  %s' $((SECONDS - start)) "$([[ $rc == 0 ]] && echo ok || echo "FAILED ($rc)")" "$name")")
    if ((rc != 0)); then print_summary; exit 1; fi
}
print_summary() { printf '\n== summary\n'; printf '%s\n' "${summary[@]}"; }

import_base() {
    command -v mmdebstrap >/dev/null || die "missing tool: mmdebstrap (apt-get install mmdebstrap)" 3
    mmdebstrap --variant=minbase bookworm - | "$engine" import - debian:bookworm
}
if ! "$engine" image inspect debian:bookworm >/dev/null 2>&1; then
    step "import debian:bookworm (mmdebstrap)" import_base
fi

cert_opts=()
[[ -z $ca_cert ]] || cert_opts=(-v "$(realpath "$ca_cert"):/host-ca.crt:ro" --build-arg PIP_CERT=/host-ca.crt)
step "build clconv (EXTRAS=$extras)" "$engine" build "${build_opts[@]}" "${cert_opts[@]}" \
    --build-arg "EXTRAS=$extras" -f docker/Dockerfile -t clconv .
step "run clconv: clconv check" "$engine" run --rm "${run_opts[@]}" clconv .venv/bin/clconv check
if [[ ,$extras, == *,test,* ]]; then
    step "run clconv: pytest tests/test_ops.py -k conv2d" "$engine" run --rm "${run_opts[@]}" clconv \
        .venv/bin/python -m pytest -q tests/test_ops.py -k conv2d -x
fi
step "build clconv-pi-emulator" "$engine" build "${build_opts[@]}" \
    -f docker/Dockerfile.pi-emulator -t clconv-pi-emulator .
if [[ -n $os_image ]]; then
    step "run clconv-pi-emulator: $pi_command" "$engine" run --rm "${run_opts[@]}" \
        -v "$(realpath "$os_image"):/image:ro" clconv-pi-emulator \
        --ssh-port "$ssh_port" --user pi:raspberry -- "$pi_command"
else
    summary+=("    -     skipped  run clconv-pi-emulator (no --os-image)")
fi
print_summary
