#!/usr/bin/env bash
# The whole test suite: set-up (packages, build) then `meson test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --for-tests
exec meson test -C build --print-errorlogs "$@"
