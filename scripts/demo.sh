#!/usr/bin/env bash
# The main job: set-up (packages, build), then a live migration on this
# machine. A source vmm boots the test guest, which dirties 128 MiB at
# 64 MiB/s and verifies every page against its own counters; a destination
# vmm waits with --incoming; `vmm ctl` migrates the running guest with a
# live progress bar and prints the statistics; the guest goes on at the
# destination and its verification keeps passing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

vmm=build/vmm/vmm
work=$(mktemp -d /tmp/vmm-demo.XXXXXX)
port=$((20000 + RANDOM % 20000))
guest=(--kernel build/guest/testguest --memory 512M --cpus 2
	--cmdline "dirty=128M rate=64M runtime=14 progress=1000")
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

for _ in $(seq 100); do grep -q "sweeps=2" "$work/source.log" 2>/dev/null && break; sleep 0.1; done
say "the guest's console at the source"
tail -n 4 "$work/source.log"

say "vmm ctl $work/source.sock migrate uri=tcp:127.0.0.1:$port"
$vmm ctl "$work/source.sock" migrate "uri=tcp:127.0.0.1:$port"
sleep 1.5
cat "$work/source.err"

say "the guest's console at the destination: same counters, still verifying"
sleep 2
tail -n 4 "$work/dest.log"
$vmm ctl "$work/dest.sock" query-status
wait "${pids[1]}" || true
say "the guest finished at the destination"
grep -E "^final|exit status" "$work/dest.log"
