# shellcheck shell=bash
# Shared by the .ci/tier-*.sh scripts (sourced, run from the repository root):
# the python to use, and `step`, which runs a command, times it and, on failure,
# prints why (the failing tests' summary lines) again at the end.
# Environment: PYTHON  the interpreter with clconv's test dependencies
#                      (default .venv/bin/python, the venv .ci/run makes)
PYTHON=${PYTHON:-.venv/bin/python}
# This checkout's clconv, whatever the interpreter has installed.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
SECONDS=0
step_times=()
step_failures=()

# The lines that say why a step failed: pytest's short summary (FAILED/ERROR lines,
# from -rfE), assertion lines, `clconv check` mismatches, Python exceptions.
why_lines() {
    grep -E '^(FAILED|ERROR) |^E   |MISMATCH|^[A-Za-z.]*(Error|Exception): |^clconv: ' "$1" | head -n 60 || true
}

# step NAME CMD...: run CMD with its output shown as it comes and logged; remember
# its time and, on failure, the why lines.
step() {
    local name=$1 start=$SECONDS rc log
    shift
    log=$(mktemp)
    echo
    echo "--- $name ($(date -u +%H:%M:%S)): $*"
    set +e
    "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    step_times+=("$(printf '%-40s %5d s  exit %d' "$name" $((SECONDS - start)) "$rc")")
    if [[ $rc != 0 ]]; then
        step_failures+=("$name (exit $rc):" "$(why_lines "$log")")
    fi
    rm -f "$log"
    return 0
}

# tier_summary TIER: print each step's time and the failures' why lines; exit 1 on any.
tier_summary() {
    echo
    echo "=== $1 tier: ${SECONDS} s in all"
    printf '  %s\n' "${step_times[@]}"
    if [[ ${#step_failures[@]} -gt 0 ]]; then
        echo "=== $1 tier FAILED:"
        printf '%s\n' "${step_failures[@]}"
        exit 1
    fi
    echo "=== $1 tier passed"
}
