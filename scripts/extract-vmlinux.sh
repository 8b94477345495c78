#!/usr/bin/env bash
# Extracts the uncompressed vmlinux (an ELF with a PVH entry note) from a
# Debian bzImage (/boot/vmlinuz-*), whose payload is xz-compressed.
# usage: scripts/extract-vmlinux.sh [VMLINUZ] OUTPUT
set -euo pipefail
if (($# == 1)); then
	in=$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)
	out=$1
elif (($# == 2)); then
	in=$1
	out=$2
else
	echo "usage: $0 [VMLINUZ] OUTPUT" >&2
	exit 2
fi
[[ -n "$in" && -r "$in" ]] || { echo "extract-vmlinux: no readable kernel image (${in:-/boot/vmlinuz-*})" >&2; exit 1; }

# Try every xz stream start in the image until one decompresses to an ELF.
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for off in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$in" | cut -d: -f1); do
	tail -c +$((off + 1)) "$in" | xz -dc 2>/dev/null >"$tmp" || true
	if [[ -s "$tmp" ]] && [[ "$(head -c 4 "$tmp" | od -An -c | tr -d ' ')" == '177ELF' ]]; then
		mv "$tmp" "$out"
		trap - EXIT
		exit 0
	fi
done
echo "extract-vmlinux: no xz-compressed ELF payload found in $in" >&2
exit 1
