#!/usr/bin/env python3
"""A test binary that needs the real CPUID dumps (../shared/cpuid-hosts) must
report "skipped" (exit 77) when they are missing, never a pass: cmocka's
skip() alone exits 0. Runs each binary given with CPUID_HOSTS_DIR pointing
at a directory that does not exist and checks for exit 77 and a SKIP line.

usage: skips_are_skips.py TEST_BINARY...
"""
import os
import subprocess
import sys
import tempfile


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    failures = 0
    with tempfile.TemporaryDirectory(prefix="no-dumps-") as d:
        env = dict(os.environ, CPUID_HOSTS_DIR=os.path.join(d, "cpuid-hosts"))
        for exe in sys.argv[1:]:
            r = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=120)
            name = os.path.basename(exe)
            ok = r.returncode == 77 and "SKIP" in r.stdout
            print(f"{'ok  ' if ok else 'FAIL'} {name} without the dumps: exit {r.returncode}"
                  f"{'' if ok else ' (expected 77 and a SKIP line)'}")
            if not ok:
                print(r.stdout[-2000:] + r.stderr[-2000:])
                failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
