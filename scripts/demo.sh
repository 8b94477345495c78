#!/usr/bin/env bash
# The main job: set-up (packages, build), then boot the bundled test guest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec build/vmm/vmm --version
