#!/usr/bin/env bash
# The main job: set-up (packages, build), then a live migration on this
# machine. A source vmm boots the test guest, which dirties 128 MiB at
# 64 MiB/s and verifies every page against its own counters; a destination
# vmm waits with --incoming; `vmm ctl` migrates the running guest with a
# live progress bar and prints the statistics; the guest goes on at the
# destination and its verification keeps passing. The demo fails (exit 1,
# in red) unless both vmm processes exit 0 and the guest's own verification
# passed on both sides: no VERIFY-FAIL, and a clean final line per vCPU.
#
# usage: scripts/demo.sh [GUEST-OPTION...]   extra test-guest options, e.g.
#        scripts/demo.sh selftest-corrupt    to watch the demo catch a guest
#                                            whose memory was corrupted
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

vmm=build/vmm/vmm
work=$(mktemp -d /tmp/vmm-demo.XXXXXX)
port=$((20000 + RANDOM % 20000))
guest=(--kernel build/guest/testguest --memory 512M --cpus 2
	--cmdline "dirty=128M rate=64M runtime=14 progress=1000${*:+ $*}")
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
pids=()
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "source: vmm boots the test guest (2 vCPUs, 512 MiB, dirtying 128 MiB at 64 MiB/s)"
$vmm "${guest[@]}" --serial "file:$work/source.log" --api-socket "$work/source.sock" \
	2>"$work/source.err" &
pids+=($!)
say "destination: vmm --incoming tcp:127.0.0.1:$port (same command line)"
$vmm "${guest[@]}" --serial "file:$work/dest.log" --api-socket "$work/dest.sock" \
	--incoming "tcp:127.0.0.1:$port" 2>"$work/dest.err" &
pids+=($!)

die() {
	printf '\n\033[1;31mDEMO FAILED: %s\033[0m\n' "$*" >&2
	for side in source dest; do
		printf -- '--- %s console (last lines) ---\n' "$side" >&2
		tail -n 6 "$work/$side.log" >&2 2>/dev/null || true
		cat "$work/$side.err" >&2 2>/dev/null || true
	done
	exit 1
}

verify_failed() { grep -h "VERIFY-FAIL" "$@" 2>/dev/null | head -n 3 | grep .; }
for _ in $(seq 300); do
	grep -q "sweeps=2" "$work/source.log" 2>/dev/null && break
	verify_failed "$work/source.log" >&2 && die "the guest's own memory verification failed at the source"
	kill -0 "${pids[0]}" 2>/dev/null || die "the source vmm exited before the migration"
	sleep 0.1
done
grep -q "sweeps=2" "$work/source.log" 2>/dev/null ||
	die "the source guest did not reach its second verification sweep within 30 s"
say "the guest's console at the source"
tail -n 4 "$work/source.log"

say "vmm ctl $work/source.sock migrate uri=tcp:127.0.0.1:$port"
$vmm ctl "$work/source.sock" migrate "uri=tcp:127.0.0.1:$port" || die "the migration failed"
src_rc=0
wait "${pids[0]}" || src_rc=$?
cat "$work/source.err"

say "the guest's console at the destination: same counters, still verifying"
sleep 2
tail -n 4 "$work/dest.log"
$vmm ctl "$work/dest.sock" query-status
dst_rc=0
wait "${pids[1]}" || dst_rc=$?
pids=()
# The guest's own verdict: every page it wrote is checked against its own
# counters, before the move and after it.
verify_failed "$work/source.log" "$work/dest.log" >&2 &&
	die "the guest's own memory verification failed"
((src_rc == 0)) || die "the source vmm exited with status $src_rc (0 after a handover)"
((dst_rc == 0)) || die "the destination vmm exited with status $dst_rc" \
	"(the guest's exit status; 3 = its memory verification failed)"
finals=$(grep -c "^final vcpu=[0-9]* writes=[0-9]* sweeps=[0-9]* errors=0 " "$work/dest.log" || true)
((finals == 2)) || die "expected a clean final verification line from both vCPUs at the" \
	"destination, found $finals"
say "the guest finished at the destination; its own verification passed on both sides"
grep -E "^final|exit status" "$work/dest.log"
