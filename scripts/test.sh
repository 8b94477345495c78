#!/usr/bin/env bash
# The whole test suite: set-up (packages, build) then `meson test`; then the
# sanitizer build (build-asan: ASan + UBSan) runs the unit tests, the fuzz
# corpora and real migrations (plain and TLS). With arguments, only
# `meson test ARGS` in build/.
# VMM_TEST_STRICT=1: a test dependency that setup.sh installs (QEMU, the
# Debian kernel, iproute2) and that is nevertheless missing fails the test
# instead of skipping it, so this command never reports fewer tests as green.
# Skips remain for what set-up cannot provide (/dev/kvm, root, the CPUID dumps
# in ../shared), each with its reason in the test log.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --for-tests
export VMM_TEST_STRICT=1
if (($#)); then
	exec meson test -C build --print-errorlogs "$@"
fi
meson test -C build --print-errorlogs

if [[ ! -f build-asan/build.ninja ]]; then
	meson setup build-asan --buildtype=debugoptimized -Dwerror=true \
		-Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C build-asan >/dev/null
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
meson test -C build-asan --print-errorlogs --suite unit --suite fuzz
meson test -C build-asan --print-errorlogs migrate-tcp migrate-tls
