#!/usr/bin/env bash
# Freezes model versions that have no expected expansion yet: writes
# tests/data/cpumodels/expected/NAME-vN.cpuid (vCPU 1 of 2 on the reference
# host) and appends "NAME-vN DIGEST" to tests/data/cpumodels/released.txt.
# Never touches an existing file: a released version is frozen; a change goes
# into a new version. Usage: tests/cpumodels/freeze-new-versions.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
vmm="${1:-build}/vmm/vmm"
data=tests/data/cpumodels
ref="$data/reference-host.txt"
[[ -x "$vmm" ]] || { echo "freeze: $vmm not built" >&2; exit 2; }
names=$(VMM_CPU_MODEL_DIR=cpumodels/data "$vmm" cpu-model list --no-host-check --json |
	python3 -c 'import json,sys; [print(v["name"]) for m in json.load(sys.stdin)["models"] for v in m["versions"]]')
new=0
for v in $names; do
	out="$data/expected/$v.cpuid"
	[[ -e "$out" ]] && continue
	VMM_CPU_MODEL_DIR=cpumodels/data "$vmm" cpu-model expand "$v" --host-cpu-profile "$ref" \
		--cpus 2 --vcpu 1 >"$out.tmp"
	mv "$out.tmp" "$out"
	digest=$(VMM_CPU_MODEL_DIR=cpumodels/data "$vmm" cpu-model show "$v" --json |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["digest"])')
	echo "$v $digest" >>"$data/released.txt"
	echo "froze $v"
	new=$((new + 1))
done
echo "freeze: $new new version(s)"
