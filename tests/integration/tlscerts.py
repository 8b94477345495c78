"""Certificates for the TLS tests, made with certtool (gnutls-bin): two CAs,
a server certificate for localhost/127.0.0.1 and client certificates, laid
out as vmm (and QEMU) expect: DIR/ca-cert.pem + server-* or client-*."""
import os
import shutil
import subprocess


def have_certtool():
    return shutil.which("certtool") is not None


def _run(args, stdin=None):
    subprocess.run(["certtool"] + args, check=True, capture_output=True, text=True, input=stdin)


def _template(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\nexpiration_days = 2\n")


def make_ca(d, name):
    key, cert, tpl = (os.path.join(d, f"{name}-{x}") for x in ("key.pem", "cert.pem", "tpl"))
    _run(["--generate-privkey", "--key-type", "ecdsa", "--outfile", key])
    _template(tpl, [f'cn = "{name}"', "ca", "cert_signing_key"])
    _run(["--generate-self-signed", "--load-privkey", key, "--template", tpl, "--outfile", cert])
    return key, cert


def make_cert(d, name, ca, cn, org, server):
    key, cert, tpl = (os.path.join(d, f"{name}-{x}") for x in ("key.pem", "cert.pem", "tpl"))
    _run(["--generate-privkey", "--key-type", "ecdsa", "--outfile", key])
    lines = [f'cn = "{cn}"', f'organization = "{org}"', "signing_key"]
    lines += ['dns_name = "localhost"', 'ip_address = "127.0.0.1"', "tls_www_server"] if server \
        else ["tls_www_client"]
    _template(tpl, lines)
    _run(["--generate-certificate", "--load-privkey", key, "--load-ca-certificate", ca[1],
          "--load-ca-privkey", ca[0], "--template", tpl, "--outfile", cert])
    return key, cert


def creds_dir(d, name, ca_cert, role, key_cert):
    """DIR with ca-cert.pem and ROLE-cert.pem/ROLE-key.pem (role: server, client)."""
    out = os.path.join(d, name)
    os.makedirs(out, exist_ok=True)
    shutil.copy(ca_cert, os.path.join(out, "ca-cert.pem"))
    shutil.copy(key_cert[0], os.path.join(out, f"{role}-key.pem"))
    shutil.copy(key_cert[1], os.path.join(out, f"{role}-cert.pem"))
    return out


def make_all(d):
    """{name: dir}: dst (server, CA1), src (client CN=vmm-source, CA1),
    src_other_ca (client of CA2, trusting CA1), src_intruder (client
    CN=intruder of CA1), plus 'psk' and 'psk_wrong' key files."""
    ca1 = make_ca(d, "ca1")
    ca2 = make_ca(d, "ca2")
    server = make_cert(d, "server", ca1, "localhost", "vmm-test", True)
    client = make_cert(d, "client", ca1, "vmm-source", "vmm-test", False)
    other = make_cert(d, "other", ca2, "vmm-source", "vmm-test", False)
    intruder = make_cert(d, "intruder", ca1, "intruder", "vmm-test", False)
    out = {
        "dst": creds_dir(d, "dst", ca1[1], "server", server),
        "src": creds_dir(d, "src", ca1[1], "client", client),
        "src_other_ca": creds_dir(d, "src-other-ca", ca1[1], "client", other),
        "src_intruder": creds_dir(d, "src-intruder", ca1[1], "client", intruder),
    }
    for name, key in (("psk", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"),
                      ("psk_wrong", "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100")):
        path = os.path.join(d, name + ".txt")
        with open(path, "w") as f:
            f.write(f"vmm-migration:{key}\n")
        out[name] = path
    return out
