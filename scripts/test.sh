#!/usr/bin/env bash
# Runs the whole test suite the way CI does: installs what is missing (scripts/setup.sh), then
# every test binary, without stopping at the first one that fails. Extra arguments go to
# `cargo test` (e.g. `scripts/test.sh --test posix`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "test: building and running the tests (the first build takes several minutes)" >&2
cargo test --no-fail-fast "$@"
