"""The certificates and keys a Kubernetes control plane on loopback needs, made with
``cryptography``: one cluster CA (signs the API server's serving certificate), the service-account
signing key pair, and the front-proxy CA with its client certificate (the aggregation layer: the
API server proves itself with it to an extension API server such as metrics-server).

Files are written once and kept: a restarted cluster keeps trusting its old kubeconfigs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["ClusterPKI"]

#: Long enough for any demo; the files are made again only when deleted.
VALIDITY = dt.timedelta(days=3650)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, private: bool) -> None:
    path.write_bytes(data)
    path.chmod(0o600 if private else 0o644)


@dataclass(frozen=True)
class _Signer:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _new_ca(common_name: str) -> _Signer:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return _Signer(cert=cert, key=key)


def _issue(
    signer: _Signer,
    *,
    common_name: str,
    server: bool,
    dns_names: tuple[str, ...] = (),
    ips: tuple[str, ...] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(signer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if dns_names or ips:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name) for name in dns_names]
                + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
            ),
            critical=False,
        )
    return builder.sign(signer.key, hashes.SHA256()), key


class ClusterPKI:
    """The files under ``folder`` (made by :meth:`ensure`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def apiserver_cert(self) -> Path:
        return self.folder / "apiserver.crt"

    @property
    def apiserver_key(self) -> Path:
        return self.folder / "apiserver.key"

    @property
    def service_account_key(self) -> Path:
        return self.folder / "sa.key"

    @property
    def service_account_pub(self) -> Path:
        return self.folder / "sa.pub"

    @property
    def front_proxy_ca_cert(self) -> Path:
        return self.folder / "front-proxy-ca.crt"

    @property
    def front_proxy_client_cert(self) -> Path:
        return self.folder / "front-proxy-client.crt"

    @property
    def front_proxy_client_key(self) -> Path:
        return self.folder / "front-proxy-client.key"

    #: The name the API server's client certificate carries towards extension API servers.
    FRONT_PROXY_CLIENT = "front-proxy-client"

    def ensure(self, *, service_ip: str) -> None:
        """Make every file that is missing (all of them on the first call)."""
        wanted = (
            self.ca_cert,
            self.apiserver_cert,
            self.apiserver_key,
            self.service_account_key,
            self.service_account_pub,
            self.front_proxy_ca_cert,
            self.front_proxy_client_cert,
            self.front_proxy_client_key,
        )
        if all(path.is_file() for path in wanted):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o755)
        ca = _new_ca("inventory-slo-kubernetes-ca")
        _write(self.ca_cert, ca.cert.public_bytes(serialization.Encoding.PEM), private=False)
        cert, key = _issue(
            ca,
            common_name="kube-apiserver",
            server=True,
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ips=("127.0.0.1", service_ip),
        )
        _write(self.apiserver_cert, cert.public_bytes(serialization.Encoding.PEM), private=False)
        _write(self.apiserver_key, _key_pem(key), private=True)
        # Service-account tokens are signed with RS256 (what every client library verifies).
        account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write(self.service_account_key, _key_pem(account_key), private=True)
        _write(
            self.service_account_pub,
            account_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            private=False,
        )
        front = _new_ca("inventory-slo-front-proxy-ca")
        _write(
            self.front_proxy_ca_cert,
            front.cert.public_bytes(serialization.Encoding.PEM),
            private=False,
        )
        cert, key = _issue(front, common_name=self.FRONT_PROXY_CLIENT, server=False)
        _write(
            self.front_proxy_client_cert,
            cert.public_bytes(serialization.Encoding.PEM),
            private=False,
        )
        _write(self.front_proxy_client_key, _key_pem(key), private=True)
