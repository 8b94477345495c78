"""The layers point one way (docs/architecture.md): a file may include
headers of its own directory and of the layers below it, never above; the
control API knows nothing of migration or the VM; migration never includes
<linux/kvm.h> (the core owns every KVM ioctl). Fails naming each include
that breaks the rule."""
import os
import re
import sys

ROOT = os.environ.get("VMM_SOURCE_ROOT") or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))

# directory -> the directories it may include from (besides itself)
ALLOWED = {
    "util": set(),
    "machine-types": {"util"},
    "cpumodels": {"util"},
    "core": {"util", "cpumodels", "machine-types"},
    "migration": {"util", "cpumodels", "machine-types", "core"},
    "api": {"util"},
    "vmm": {"util", "cpumodels", "machine-types", "core", "migration", "api"},
}
FORBIDDEN_SYSTEM = {"migration": ["linux/kvm.h"], "api": ["linux/kvm.h"], "vmm": ["linux/kvm.h"]}

bad = []
files = 0
for top in ALLOWED:
    for dirpath, _, names in os.walk(os.path.join(ROOT, top)):
        for n in names:
            if not n.endswith((".c", ".h")):
                continue
            path = os.path.join(dirpath, n)
            files += 1
            for lineno, line in enumerate(open(path, errors="replace"), 1):
                m = re.match(r'\s*#\s*include\s+"([^"/]+)/', line)
                if m and m.group(1) != top and m.group(1) not in ALLOWED[top]:
                    bad.append(f"{os.path.relpath(path, ROOT)}:{lineno}: {top}/ includes "
                               f"{m.group(1)}/ ({line.strip()})")
                m = re.match(r'\s*#\s*include\s+<([^>]+)>', line)
                if m and m.group(1) in FORBIDDEN_SYSTEM.get(top, []):
                    bad.append(f"{os.path.relpath(path, ROOT)}:{lineno}: {top}/ includes "
                               f"<{m.group(1)}>: only the core talks to KVM")
if files < 50:
    print(f"FAIL: found only {files} source files under {ROOT}: wrong root?")
    sys.exit(1)
for b in bad:
    print("FAIL:", b)
print(f"{files} files checked, {len(bad)} includes against the layering")
sys.exit(1 if bad else 0)
