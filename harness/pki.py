"""A throwaway Kubernetes PKI made with openssl: a CA, certificates it signs, service-account
keys and kubeconfigs. EC P-256 throughout; private keys are 0600 in a 0700 directory.

The test API server (harness.kube_apiserver) and the local cluster (harness.cluster) both use
it; openssl is on every Debian machine, so no Go or Python crypto tool is needed.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from harness.errors import StackError


def openssl(*args: str | Path) -> None:
    result = subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise StackError(f"openssl {args[0]} failed: {result.stderr.strip()[-300:]}")


def ec_key(path: Path) -> Path:
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path)
    path.chmod(0o600)
    return path


def make_ca(directory: Path, *, common_name: str, days: int) -> tuple[Path, Path]:
    """(ca.crt, ca.key) in `directory`, which becomes 0700."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    key = ec_key(directory / "ca.key")
    cert = directory / "ca.crt"
    openssl(
        "req", "-x509", "-new", "-key", key, "-subj", f"/CN={common_name}",
        "-days", str(days), "-out", cert,
    )  # fmt: skip
    return cert, key


def issue(
    directory: Path,
    name: str,
    *,
    subject: str,
    extensions: str,
    ca: tuple[Path, Path],
    days: int,
) -> tuple[Path, Path]:
    """`name`.crt and `name`.key signed by `ca`; `extensions` is an openssl extension file
    (subjectAltName, extendedKeyUsage ...)."""
    key = ec_key(directory / f"{name}.key")
    request = directory / f"{name}.csr"
    cert = directory / f"{name}.crt"
    ext = directory / f"{name}.ext"
    ext.write_text(extensions)
    openssl("req", "-new", "-key", key, "-subj", subject, "-out", request)
    ca_cert, ca_key = ca
    openssl(
        "x509", "-req", "-in", request, "-CA", ca_cert, "-CAkey", ca_key,
        "-set_serial", f"0x{secrets.token_hex(16)}", "-days", str(days), "-extfile", ext,
        "-out", cert,
    )  # fmt: skip
    request.unlink()
    ext.unlink()
    return cert, key


def service_account_keys(directory: Path) -> tuple[Path, Path]:
    """(private, public) keys that sign and check service-account tokens."""
    private = ec_key(directory / "service-account.key")
    public = directory / "service-account.pub"
    openssl("ec", "-in", private, "-pubout", "-out", public)
    return private, public


def kubeconfig_text(
    *, server: str, ca_cert: Path, client_cert: Path, client_key: Path, name: str
) -> str:
    """A kubeconfig with one cluster, one certificate user and one context, all called `name`."""
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: {name}\n  cluster:\n    server: {server}\n"
        f"    certificate-authority: {ca_cert}\n"
        f"users:\n- name: {name}\n  user:\n"
        f"    client-certificate: {client_cert}\n    client-key: {client_key}\n"
        f"contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n"
        f"current-context: {name}\n"
    )


def write_private(path: Path, text: str) -> Path:
    path.write_text(text)
    os.chmod(path, 0o600)
    return path
