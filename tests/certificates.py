"""Self-signed certificates for tests and benchmarks on loopback or in the network lab:
the web application over TLS (tests/ui_support.py), coturn's ``turns:`` listener
(tests/coturn_support.py, bench/network.py)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(
    directory: Path,
    *,
    common_name: str,
    addresses: Sequence[str] = ("127.0.0.1",),
    dns_names: Sequence[str] = (),
    valid_days: int = 1,
    ca: bool = False,
    prefix: str = "",
) -> tuple[Path, Path]:
    """A certificate for ``addresses`` and ``dns_names`` (its own issuer; ``ca``: marked
    as a CA, so a client may take it as its trust anchor) and its key, written as
    ``<prefix>cert.pem`` and ``<prefix>key.pem`` (the key readable by its owner only)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = directory / f"{prefix}cert.pem", directory / f"{prefix}key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o600)
    return cert_path, key_path
