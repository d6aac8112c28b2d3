"""The certificate and key that sign the C2PA manifests of labelled files: LABEL_CERT (the chain,
PEM, leaf first) and LABEL_KEY (its private key, PEM); in development only, a leaf of a local
development CA generated once into the home folder. Production refuses to label without real
ones, and refuses the development certificate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from consent_service.crypto import write_new_key_file
from consent_service.settings import InsecureSettings, Settings
from consent_service.timeutil import utcnow

DEV_FILE = "label-signing-dev.pem"
# Every development certificate names this organisation; production refuses it.
DEV_ORGANIZATION = "Consent Service development (untrusted)"


class LabelCredentialsError(RuntimeError):
    """LABEL_CERT / LABEL_KEY that cannot be read or do not belong together."""


@dataclass(frozen=True)
class LabelCredentials:
    """What c2pa-python's signer takes: the chain and key as PEM, and the algorithm's name."""

    chain_pem: bytes
    key_pem: bytes
    algorithm: str  # "es256", "es384", "ps256" or "ed25519"
    subject: str  # the leaf's subject, for people reading a label
    development: bool  # the leaf names DEV_ORGANIZATION


def load(settings: Settings) -> LabelCredentials:
    """The configured credentials; in development without LABEL_CERT/LABEL_KEY, the generated
    development ones (created on first use)."""
    if settings.label_cert is None and settings.label_key is None:
        if settings.is_production:
            raise InsecureSettings(
                "LABEL_CERT and LABEL_KEY must name the certificate chain and key that sign "
                "labels when CONSENT_SERVICE_ENV=production"
            )
        return _development(settings.home / DEV_FILE)
    if settings.label_cert is None or settings.label_key is None:
        raise LabelCredentialsError("set both LABEL_CERT and LABEL_KEY, or neither")
    try:
        chain = settings.label_cert.expanduser().read_bytes()
        key = settings.label_key.expanduser().read_bytes()
    except OSError as exc:
        raise LabelCredentialsError(f"cannot read the label certificate or key: {exc}") from None
    credentials = _parse(chain, key)
    if settings.is_production and credentials.development:
        raise InsecureSettings(
            "LABEL_CERT is the development certificate: production labels need a real one"
        )
    return credentials


def _parse(chain_pem: bytes, key_pem: bytes) -> LabelCredentials:
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        raise LabelCredentialsError(f"the label certificate or key is not PEM: {exc}") from None
    leaf = certs[0]
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    leaf_public = leaf.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if public != leaf_public:
        raise LabelCredentialsError("LABEL_KEY is not the key of LABEL_CERT's first certificate")
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}.get(
            key.curve.name
        )
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = "ed25519"
    elif isinstance(key, rsa.RSAPrivateKey):
        algorithm = "ps256"
    else:
        algorithm = None
    if algorithm is None:
        raise LabelCredentialsError("C2PA signs with EC P-256/384/521, Ed25519 or RSA keys only")
    organizations = leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return LabelCredentials(
        chain_pem,
        key_pem,
        algorithm,
        leaf.subject.rfc4514_string(),
        development=any(o.value == DEV_ORGANIZATION for o in organizations),
    )


def _development(path: Path) -> LabelCredentials:
    if not path.exists():
        write_new_key_file(path, development_pem().decode())
    text = path.read_bytes()
    marker = b"-----BEGIN CERTIFICATE-----"
    key_pem, _, rest = text.partition(marker)
    return _parse(marker + rest, key_pem)


def development_pem() -> bytes:
    """A private key (EC P-256), then its certificate and the development CA that issued it:
    the profile C2PA asks of a signer (a CA-issued leaf with digitalSignature and an extended
    key usage; a self-signed leaf is refused), trusted by nobody."""
    now = utcnow()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("Consent Service development label CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("Consent Service labels"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return (
        key_pem
        + leaf.public_bytes(serialization.Encoding.PEM)
        + ca.public_bytes(serialization.Encoding.PEM)
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEV_ORGANIZATION),
        ]
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
