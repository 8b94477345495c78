"""The test guest boots under vmm on 1 and 2 vCPUs (SMP started by the guest
with INIT/SIPI from our MP table), takes timer ticks on the pin the MP table
names, exits with the status it asks for, and dirties and verifies memory.
A guest that corrupts its own memory on purpose must be caught (status 3)."""
from vmmtest import check, fail, guest_args, require_kvm, run

require_kvm()
for cpus in (1, 2):
    p = run(guest_args("exit=42", memory="64M", cpus=cpus), timeout=30)
    out = p.stdout.splitlines()
    check(p.returncode == 42, f"{cpus} vCPU(s): guest exit status 42 reaches vmm's exit code")
    for i in range(cpus):
        check(any(l == f"testguest: vcpu {i} apic={i} online" for l in out), f"vCPU {i} online")
    check(f"testguest: boot cpus={cpus} mem=63MiB" in p.stdout, "the guest counted CPUs and RAM")
    check("cpus from mptable, ioapic=0xfec00000 irq0-pin=2" in p.stdout, "MP table found")
    check("WARNING" not in p.stdout, "timer ticks arrive on the pin the MP table names")

p = run(guest_args("dirty=16M rate=16M runtime=3 progress=1000", memory="128M", cpus=2), timeout=60)
finals = [l for l in p.stdout.splitlines() if l.startswith("final ")]
check(p.returncode == 0 and len(finals) == 2 and all("errors=0" in l for l in finals),
      f"dirty + verify on 2 vCPUs ends clean: {finals}")
check(all(int(l.split("sweeps=")[1].split()[0]) >= 2 for l in finals),
      "the verifier swept every slice more than once")
p = run(guest_args("dirty=8M rate=8M runtime=4 selftest-corrupt", memory="64M"), timeout=60)
check(p.returncode == 3 and "VERIFY-FAIL" in p.stdout,
      "a page corrupted behind the guest's back is caught (status 3)")
