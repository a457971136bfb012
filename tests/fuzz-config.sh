#!/usr/bin/env bash
# The config fuzz pass (issue 15 item 8): mutated config.json files through parsing, validation
# and the pure config-to-kernel helpers; fails on the first panic and prints the config and the
# seed (replay with HUSK_FUZZ_SEED=<seed>). Needs no root. Usage: tests/fuzz-config.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
HUSK_FUZZ_SECS="${1:-${HUSK_FUZZ_SECS:-60}}" \
    cargo test -p husk-runtime --locked --lib fuzz_config_parse_and_validate_never_panics -- --nocapture
