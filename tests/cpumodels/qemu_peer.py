"""QEMU as the CPU-model engine's independent peer: shared by the QEMU tests
of tests/cpumodels (Python 3 stdlib only).

QEMU is a test dependency scripts/setup.sh installs: missing, a test skips
(exit 77) when run by hand and fails under scripts/test.sh, which sets
VMM_TEST_STRICT=1.
"""
import json
import os
import shutil
import subprocess
import sys

QEMU = os.environ.get("QEMU", "qemu-system-x86_64")


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)


def fail(why):
    print("FAIL: " + why)
    sys.exit(1)


def require_qemu():
    if shutil.which(QEMU):
        return
    why = ("%s not installed (Debian package qemu-system-x86; scripts/setup.sh --for-tests "
           "installs it)" % QEMU)
    if os.environ.get("VMM_TEST_STRICT") == "1":
        fail(why + "; VMM_TEST_STRICT=1 (scripts/test.sh) makes this a failure")
    skip(why)


def kvm_usable():
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def norm(name):
    return name.lower().replace("-", "_").replace(".", "_")


class Qmp:
    """One QEMU process spoken to over QMP on stdio."""

    def __init__(self, args):
        self.p = subprocess.Popen(
            [QEMU] + list(args) + ["-qmp", "stdio", "-display", "none", "-nodefaults"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        greeting = self.p.stdout.readline()
        if not greeting:
            err = self.p.stderr.read()
            raise RuntimeError("QEMU did not start (%s): %s" % (" ".join(args), err.strip()))
        self.cmd("qmp_capabilities")

    def cmd(self, name, args=None):
        msg = {"execute": name}
        if args is not None:
            msg["arguments"] = args
        self.p.stdin.write(json.dumps(msg) + "\n")
        self.p.stdin.flush()
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("QEMU closed QMP during " + name)
            reply = json.loads(line)
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise RuntimeError("%s: %s" % (name, reply["error"]))

    def close(self):
        try:
            self.cmd("quit")
        except RuntimeError:
            pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


def ours(cli, data_dir, *args, expect=(0,)):
    """Runs the engine's CLI (cpumodel-cli, = `vmm cpu-model`); parsed JSON."""
    env = dict(os.environ, VMM_CPU_MODEL_DIR=data_dir)
    r = subprocess.run([cli] + list(args), capture_output=True, text=True, env=env)
    if r.returncode not in expect:
        raise RuntimeError("%s %s: exit %d: %s" % (cli, " ".join(args), r.returncode,
                                                   r.stderr.strip()))
    return json.loads(r.stdout)


def feature_table(cli, data_dir):
    """Our feature table: [{name, aliases, leaf, subleaf, register, bit, flags}]
    and a map from every normalized spelling to our name."""
    table = ours(cli, data_dir, "features", "--json")
    spelling = {}
    for f in table:
        for n in [f["name"]] + f["aliases"].split():
            spelling[norm(n)] = f["name"]
    return table, spelling
