#!/usr/bin/env bash
# The whole test suite: set-up (packages, build) then `meson test`.
# VMM_TEST_STRICT=1: a test dependency that setup.sh installs (QEMU, the
# Debian kernel, iproute2) and that is nevertheless missing fails the test
# instead of skipping it, so this command never reports fewer tests as green.
# Skips remain for what set-up cannot provide (/dev/kvm, root, the CPUID dumps
# in ../shared), each with its reason in the test log.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --for-tests
export VMM_TEST_STRICT=1
exec meson test -C build --print-errorlogs "$@"
