"""C2PA Content Credentials for every output, signed offline by the foundry's own CA.

``init_signing_ca`` makes a private PKI (ECDSA P-256): a root CA and a signing leaf with the
profile C2PA requires of a claim signer -- digitalSignature key usage, the emailProtection
extended key usage, an authority key identifier, not a CA. The root is the trust anchor our
verifier uses; outside verifiers see the chain as valid but untrusted unless they add it.

Manifests are signed in memory with ES256 and no timestamp authority, OCSP or remote
manifest fetch, so signing and verifying work with no network at all.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
COMPOSITE_WITH_TRAINED_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
INGREDIENT_MIME_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif",
                         "tiff": "image/tiff", "svg": "image/svg+xml"}
GENERATION_ASSERTION = "org.licensed-image-foundry.generation"
CA_FILE, CHAIN_FILE, KEY_FILE = "ca.pem", "signer-chain.pem", "signer-key.pem"


class SigningNotConfigured(RuntimeError):
    """No signing material in the configured folder: run ``foundry provenance init-ca``."""


def init_signing_ca(folder: Path, *, organization: str = "Licensed Image Foundry", leaf_days: int = 825,
                    overwrite: bool = False) -> dict[str, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    paths = {name: folder / name for name in (CA_FILE, CHAIN_FILE, KEY_FILE)}
    if not overwrite and any(path.exists() for path in paths.values()):
        raise FileExistsError(f"signing material already exists in {folder}; pass overwrite to replace it")
    now = dt.datetime.now(dt.UTC)
    not_before = now - dt.timedelta(minutes=5)

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                          x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def key_usage(*, sign: bool, certs: bool) -> x509.KeyUsage:
        return x509.KeyUsage(digital_signature=sign, content_commitment=False, key_encipherment=False,
                             data_encipherment=False, key_agreement=False, key_cert_sign=certs, crl_sign=certs,
                             encipher_only=False, decipher_only=False)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_name = name(f"{organization} provenance root CA")
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
               .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(now + dt.timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(key_usage(sign=True, certs=True), critical=True)
               .add_extension(ca_ski, critical=False)
               .sign(ca_key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_cert = (x509.CertificateBuilder().subject_name(name(f"{organization} content credentials signer"))
                 .issuer_name(ca_name).public_key(leaf_key.public_key())
                 .serial_number(x509.random_serial_number())
                 .not_valid_before(not_before).not_valid_after(now + dt.timedelta(days=leaf_days))
                 .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                 .add_extension(key_usage(sign=True, certs=False), critical=True)
                 .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                 .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
                 .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                                critical=False)
                 .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    folder.mkdir(parents=True, exist_ok=True)
    paths[CA_FILE].write_bytes(ca_cert.public_bytes(pem))
    paths[CHAIN_FILE].write_bytes(leaf_cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    key_bytes = leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    descriptor = os.open(paths[KEY_FILE], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key_bytes)
    # The CA's private key is not kept: the leaf is all a deployment signs with, and a new
    # leaf means a new CA (run init-ca again), which keeps a stolen disk from minting signers.
    return paths


def _context(ca_pem: str):
    from c2pa import Context

    return Context.from_dict({
        "version": 1,
        "trust": {"user_anchors": ca_pem},
        "verify": {"verify_trust": True, "verify_after_sign": False, "verify_after_reading": True,
                   "ocsp_fetch": False, "remote_manifest_fetch": False},
        "builder": {"thumbnail": {"enabled": False}, "actions": {"auto_created_action": {"enabled": False}}},
    })


class ContentCredentials:
    """Signs and reads C2PA manifests with one deployment's signing material (thread-safe use:
    one Builder per call; the signer and context are reused)."""

    def __init__(self, folder: Path):
        self.folder = folder
        try:
            self.ca_pem = (folder / CA_FILE).read_text()
            chain = (folder / CHAIN_FILE).read_bytes()
            key = (folder / KEY_FILE).read_bytes()
        except FileNotFoundError:
            raise SigningNotConfigured(
                f"no signing CA in {folder}: run 'foundry provenance init-ca' first") from None
        from c2pa import C2paSignerInfo, C2paSigningAlg, Signer

        self._signer = Signer.from_info(C2paSignerInfo(alg=C2paSigningAlg.ES256, sign_cert=chain,
                                                       private_key=key, ta_url=None))
        self._context = _context(self.ca_pem)

    def sign_png(self, png: bytes, *, title: str, generator: dict[str, str], generation: dict,
                 ingredients: tuple[Ingredient, ...] = ()) -> bytes:
        """The PNG with an embedded manifest: created by a trained model, plus our generation record.

        An edit names its inputs as ingredients: the image edited (``parentOf``: the claim says it was
        opened, then edited with a trained model) and any mask (``componentOf``)."""
        from c2pa import Builder

        manifest = {
            "claim_generator_info": [generator],
            "title": title,
            "format": "image/png",
            "assertions": [
                {"label": "c2pa.actions", "data": {"actions": _actions(generator, ingredients)}},
                {"label": GENERATION_ASSERTION, "data": generation},
            ],
        }
        destination = io.BytesIO()
        with Builder(manifest, context=self._context) as builder:
            for number, ingredient in enumerate(ingredients):
                builder.add_ingredient({"title": ingredient.title, "relationship": ingredient.relationship,
                                        "format": ingredient.mime_type, "label": f"ingredient-{number}",
                                        "instance_id": f"sha256:{ingredient.sha256}"},
                                       ingredient.mime_type, io.BytesIO(ingredient.data))
            builder.sign(self._signer, "image/png", io.BytesIO(png), destination)
        return destination.getvalue()

    def read(self, data: bytes, mime_type: str = "image/png") -> ManifestReport:
        return read_manifest(data, mime_type=mime_type, context=self._context)


@dataclass(frozen=True)
class Ingredient:
    """An input of an edited output, named in its manifest by relationship and content hash."""

    title: str
    relationship: str
    """parentOf (the image edited) or componentOf (a part composed in, such as a mask)."""
    sha256: str
    format: str
    data: bytes = field(repr=False)

    @property
    def mime_type(self) -> str:
        return INGREDIENT_MIME_TYPES[self.format]


def _actions(generator: dict[str, str], ingredients: tuple[Ingredient, ...]) -> list[dict]:
    """created (text-to-image), or opened (the parent ingredient) then edited with a trained model."""
    if not ingredients:
        return [{"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA, "softwareAgent": generator}]
    labels = [f"ingredient-{number}" for number in range(len(ingredients))]
    parents = [label for label, i in zip(labels, ingredients, strict=True) if i.relationship == "parentOf"]
    components = [label for label, i in zip(labels, ingredients, strict=True) if i.relationship != "parentOf"]
    edited = {"action": "c2pa.edited", "digitalSourceType": COMPOSITE_WITH_TRAINED_MEDIA, "softwareAgent": generator,
              **({"parameters": {"ingredientIds": components}} if components else {})}
    return [{"action": "c2pa.opened", "parameters": {"ingredientIds": parents}}, edited]


@dataclass
class ManifestReport:
    """What a file's Content Credentials say, and whether they hold."""

    verdict: str
    """trusted, valid (intact, signer not ours), invalid, corrupt, or no_manifest."""
    status_codes: list[str] = field(default_factory=list)
    generation: dict | None = None
    claim_generator: list[dict] = field(default_factory=list)
    ingredients: list[dict] = field(default_factory=list)
    """An edit's inputs as its manifest names them: title, relationship, sha256, format."""

    @property
    def present(self) -> bool:
        return self.verdict != "no_manifest"

    @property
    def intact(self) -> bool:
        return self.verdict in ("trusted", "valid")


def read_manifest(data: bytes, *, mime_type: str, context) -> ManifestReport:
    from c2pa import C2paError, Reader

    try:
        with Reader(mime_type, io.BytesIO(data), context=context) as reader:
            state = reader.get_validation_state()
            store = json.loads(reader.json())
    except C2paError.ManifestNotFound:
        return ManifestReport(verdict="no_manifest")
    except C2paError as exc:
        # structurally broken manifest data is as untrustworthy as a failed hash
        return ManifestReport(verdict="corrupt", status_codes=[f"{type(exc).__name__.lstrip('_')}: {exc}"])
    codes = [status["code"] for status in store.get("validation_status", []) or []]
    active = store.get("manifests", {}).get(store.get("active_manifest", ""), {})
    generation = next((assertion.get("data") for assertion in active.get("assertions", [])
                       if assertion.get("label") == GENERATION_ASSERTION), None)
    verdict = {"Trusted": "trusted", "Valid": "valid"}.get(str(state), "invalid")
    ingredients = [{"title": item.get("title"), "relationship": item.get("relationship"),
                    "sha256": str(item.get("instance_id", "")).removeprefix("sha256:") or None,
                    "format": item.get("format")} for item in active.get("ingredients", []) or []]
    return ManifestReport(verdict=verdict, status_codes=codes, generation=generation,
                          claim_generator=active.get("claim_generator_info", []), ingredients=ingredients)
