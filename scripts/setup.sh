#!/usr/bin/env bash
# Installs what the build (and, with --for-tests, the test suite) needs from
# Debian's archive when it is missing, then configures and builds into build/.
# Runs apt-get only as root; otherwise names the missing packages and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

build_pkgs=(gcc libc6-dev meson ninja-build pkg-config python3 libuv1-dev libzstd-dev
	libprotobuf-c-dev protobuf-c-compiler libcmocka-dev libjson-c-dev libxxhash-dev liburing-dev
	libgnutls28-dev)
# For the tests: QEMU is the peer for cross-checks and benchmarks, the Debian
# kernel is the real guest, iproute2 makes the two-host network namespaces,
# gnutls-bin's certtool makes the TLS tests' certificates, clang with its
# runtime (libFuzzer, sanitizers) builds the fuzz targets (README "Fuzzing").
test_pkgs=(qemu-system-x86 linux-image-amd64 xz-utils iproute2 gnutls-bin clang libclang-rt-14-dev)

want=("${build_pkgs[@]}")
if [[ "${1:-}" == "--for-tests" ]]; then
	want+=("${test_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	if [[ $(id -u) -ne 0 ]]; then
		echo "setup: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
		exit 1
	fi
	echo "setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ! -f build/build.ninja ]]; then
	meson setup build --buildtype=debugoptimized -Dwerror=true >/dev/null
fi
ninja -C build >/dev/null
