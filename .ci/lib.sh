# shellcheck shell=bash
# .ci/lib.sh — the tier runner shared by .ci/run and .ci/pi-tier.sh. Source it.
#
#   run_tier NAME LIMIT_S CMD...
#
# runs CMD with its output shown and kept in $CI_LOGS/NAME.log, under `timeout`
# (LIMIT_S, capped by what is left of the run's budget, CI_DEADLINE in $SECONDS),
# and records the tier's time and exit status. A tier that fails says why: what its
# exit status means, the last test it started (pytest tiers that set
# CLCONV_TEST_TRACE, see tests/conftest.py), the kernel's OOM-killer lines, and
# the end of its log. Later tiers still run, so one run shows every failure;
# tier_summary prints the table and returns 1 if any tier failed.

CI_LOGS=${CI_LOGS:-$(mktemp -d /tmp/clconv-ci-logs.XXXXXX)}
export CI_LOGS
mkdir -p "$CI_LOGS"
# The interpreter with clconv's test dependencies (the venv .ci/run makes), and this
# checkout's clconv whatever that interpreter has installed.
PYTHON=${PYTHON:-.venv/bin/python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
CI_DEADLINE=${CI_DEADLINE:-}
# The Debian packages the pi/ tooling and its tiers need (.ci/run installs them with the
# rest, .ci/pi-tier.sh on its own).
# shellcheck disable=SC2034  # used by the scripts that source this file
PI_APT_PACKAGES=(
    qemu-user-static qemu-system-arm binfmt-support mmdebstrap arch-test debian-archive-keyring
    mtools dosfstools e2fsprogs fdisk util-linux mount xz-utils openssl openssh-client
    shellcheck kmod cpio gzip psmisc dpkg apt ca-certificates python3 python3-pytest
    python3-pip python3-setuptools python3-wheel
)       # seconds since the run started ($SECONDS) by which all must end
_ci_rows=()
_ci_failed=()

ci_now() { date -u +%H:%M:%S; }

# exit_meaning RC: what an exit status usually means here.
exit_meaning() {
    case $1 in
        0) echo "passed" ;;
        1) echo "tests failed or the command reported an error" ;;
        2) echo "usage error, or pytest was interrupted / could not collect" ;;
        4) echo "pytest usage error" ;;
        5) echo "pytest collected no tests" ;;
        124) echo "timed out (its time limit, or the run's budget, ran out)" ;;
        126) echo "a command was found but could not be executed" ;;
        127) echo "a command was not found (missing tool, or an exec inside the chroot/VM failed)" ;;
        130) echo "interrupted (SIGINT)" ;;
        134) echo "aborted (SIGABRT: an assertion or a library's abort())" ;;
        137) echo "killed (SIGKILL: the OOM killer, or timeout's kill after SIGTERM was ignored)" ;;
        139) echo "segmentation fault (SIGSEGV)" ;;
        143) echo "terminated (SIGTERM)" ;;
        *) if (( $1 > 128 )); then echo "killed by signal $(( $1 - 128 ))"; else echo "exit status $1"; fi ;;
    esac
}

# why_lines LOG: the lines that say why a run failed: pytest's short summary (FAILED and
# ERROR lines, -rfE), assertion lines, `clconv check` mismatches, Python exceptions,
# Oclgrind's per-kernel report counts.
why_lines() {
    grep -E '^(FAILED|ERROR) |^E   |MISMATCH|^[A-Za-z.]*(Error|Exception): |^clconv[ :]|^ERROR oclgrind' "$1" | head -n 60 || true
}

# explain_failure NAME RC LOG: print why tier NAME failed.
explain_failure() {
    local name=$1 rc=$2 log=$3 trace why
    echo "=== tier $name FAILED: exit $rc: $(exit_meaning "$rc")"
    why=$(why_lines "$log")
    if [[ -n "$why" ]]; then
        echo "--- why (from its log):"
        echo "$why"
    fi
    trace=$CI_LOGS/$name.trace   # NAME is the tier's file name here
    if [[ -s "$trace" ]]; then
        echo "--- last test started: $(tail -n 1 "$trace")"
    fi
    if (( rc == 137 || rc == 139 || rc == 134 )) && command -v dmesg >/dev/null; then
        echo "--- kernel log (OOM killer, segfaults), last lines:"
        dmesg 2>/dev/null | grep -iE 'out of memory|oom|killed process|segfault|traps:' | tail -n 8 || true
    fi
    echo "--- last 40 lines of $log:"
    tail -n 40 "$log"
    echo "=== end of tier $name's failure report"
}

# run_tier NAME LIMIT_S CMD...
run_tier() {
    local name=$1 limit=$2 start=$SECONDS rc=0 left
    shift 2
    if [[ -n "$CI_DEADLINE" ]]; then
        left=$(( CI_DEADLINE - SECONDS ))
        if (( left < 60 )); then
            echo "=== tier $name NOT RUN: the run's budget is spent ($SECONDS s used of $CI_DEADLINE s)"
            _ci_rows+=("$(printf '%-40s %6s  %s' "$name" "-" "not run: budget spent")")
            _ci_failed+=("$name")
            return 1
        fi
        (( limit <= left )) || limit=$left
    fi
    local file=${name//[^A-Za-z0-9_.+-]/_}   # the tier's log and trace files
    echo
    echo "=== tier $name ($(ci_now), limit ${limit} s): $*"
    export CLCONV_TEST_TRACE=$CI_LOGS/$file.trace
    rm -f "$CLCONV_TEST_TRACE"
    if [[ $(type -t "$1") == function ]]; then  # a shell function: the caller's limit holds
        "$@" 2>&1 | tee "$CI_LOGS/$file.log"
    else
        timeout --kill-after=30 "$limit" "$@" 2>&1 | tee "$CI_LOGS/$file.log"
    fi
    rc=${PIPESTATUS[0]}
    unset CLCONV_TEST_TRACE
    local took=$(( SECONDS - start ))
    if (( rc == 0 )); then
        echo "=== tier $name passed in $took s"
        _ci_rows+=("$(printf '%-40s %6d  %s' "$name" "$took" "passed")")
    else
        explain_failure "$file" "$rc" "$CI_LOGS/$file.log"
        _ci_rows+=("$(printf '%-40s %6d  exit %d: %s' "$name" "$took" "$rc" "$(exit_meaning "$rc")")")
        _ci_failed+=("$name")
    fi
    return "$rc"
}

# start_tier NAME LIMIT_S CMD...: run_tier in the background (for a tier that keeps one
# core busy while another tier keeps the other); its output is held back and printed,
# with its row in the table, by wait_tier NAME.
declare -A _ci_bg=()
start_tier() {
    local file=${1//[^A-Za-z0-9_.+-]/_}
    echo "=== tier $1 started in the background ($(ci_now)); its report follows when it ends"
    (
        rc=0
        run_tier "$@" >"$CI_LOGS/$file.report" 2>&1 || rc=$?
        printf '%s\n' "${_ci_rows[-1]}" >"$CI_LOGS/$file.row"
        exit "$rc"
    ) &
    _ci_bg[$file]=$!
}
wait_tier() {
    local file=${1//[^A-Za-z0-9_.+-]/_} rc=0
    wait "${_ci_bg[$file]}" || rc=$?
    echo
    echo "=== report of background tier $1:"
    cat "$CI_LOGS/$file.report"
    _ci_rows+=("$(cat "$CI_LOGS/$file.row" 2>/dev/null || printf '%-40s %6s  exit %d' "$1" - "$rc")")
    (( rc == 0 )) || _ci_failed+=("$1")
    return "$rc"
}

# record_failure NAME RC LOG: count something that ran outside run_tier (a background
# job) as a failed tier, with the same report.
record_failure() {
    explain_failure "$1" "$2" "$3"
    _ci_rows+=("$(printf '%-40s %6s  exit %d: %s' "$1" "-" "$2" "$(exit_meaning "$2")")")
    _ci_failed+=("$1")
}

# tier_summary TITLE: the table of tiers; returns 1 if any failed.
tier_summary() {
    echo
    echo "=== $1: tier times (total $SECONDS s)"
    printf '  %-40s %6s  %s\n' "tier" "seconds" "result"
    printf '  %s\n' "${_ci_rows[@]}"
    if [[ ${#_ci_failed[@]} -gt 0 ]]; then
        echo "=== FAILED tiers: ${_ci_failed[*]} (logs in $CI_LOGS)"
        return 1
    fi
    return 0
}
