#!/usr/bin/env bash
# cargo's runner for test binaries (set by tests/run.sh): one hung test binary is killed after
# HUSK_TEST_BINARY_TIMEOUT (default 8m) and reported as failed, and the other binaries still run.
limit=${HUSK_TEST_BINARY_TIMEOUT:-8m}
timeout --kill-after=30s "$limit" "$@"
rc=$?
if ((rc == 124 || rc == 137)); then
    echo "== $(basename "$1"): killed after $limit (a hung test?); its Drop guards did not run" >&2
fi
exit "$rc"
