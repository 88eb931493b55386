"""Where did this image come from? Content Credentials first, then the invisible watermark, then
the perceptual hash -- each weaker than the one before, and the answer says which one spoke.

The answer is public provenance (model, lineage, licences, contributors, whether the file was
altered); it never reveals the prompt or which customer made the image. The generation's own record
(its id, when it was made, whether it was refunded) is shown only to the tenant that made it, and
to admins.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from foundry.accounts.policy import Principal
from foundry.blobs import sha256_hex
from foundry.catalog.imaging import ImageLimits, ImageRejected, open_raster, sniff_format
from foundry.catalog.models import Contributor
from foundry.datasets.models import SnapshotEntry
from foundry.errors import InvalidInput
from foundry.generation.models import GeneratedImage, Generation
from foundry.generation.policy import sees_generation
from foundry.licensing.models import LicenseGrant
from foundry.models_registry import service as registry_service
from foundry.royalties.models import AttributionLine
from provenance import watermark
from provenance.c2pa_manifest import ContentCredentials
from provenance.hashing import hamming, nearest_hash, perceptual_hash, phash_from_hex

LOOKUP_DISTANCE = 6
"""A perceptual-hash match this close counts as "probably this output" (reported as such)."""

_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif", "tiff": "image/tiff"}


@dataclass
class VerificationReport:
    found: bool
    method: str | None
    """c2pa, watermark, perceptual_hash, or None when nothing matched."""
    manifest: dict
    watermark: dict | None
    altered: bool | None
    """None when we cannot tell (nothing matched)."""
    sha256: str
    generation: dict | None = None
    image_index: int | None = None
    model: dict | None = None
    lineage: list[dict] = field(default_factory=list)
    licenses: list[dict] = field(default_factory=list)
    contributors: dict | None = None
    perceptual_distance: int | None = None
    notes: list[str] = field(default_factory=list)


def verify_image(*, session: Session, data: bytes, credentials: ContentCredentials, limits: ImageLimits,
                 viewer: Principal) -> VerificationReport:
    image_format = sniff_format(data)
    if image_format not in _MIME:
        raise InvalidInput("upload a PNG, JPEG, WebP, GIF or TIFF image", code="unsupported_format")
    try:
        pixels = open_raster(data, limits)
    except ImageRejected as exc:
        raise InvalidInput(exc.message, code=exc.code) from None
    digest = sha256_hex(data)
    manifest = credentials.read(data, _MIME[image_format])
    manifest_part = {"verdict": manifest.verdict, "status_codes": manifest.status_codes,
                     "ingredients": manifest.ingredients}
    reading = watermark.extract(pixels)
    watermark_part = ({"generation_id": str(reading.generation_id), "image_index": reading.index,
                       "corrected_bytes": reading.corrected_bytes} if reading else None)

    # 1. a manifest naming one of our generations
    if manifest.generation and (found := _image_by_claim(session, manifest.generation)):
        image, generation = found
        altered = not manifest.intact or digest != image.delivery_sha256
        notes = [] if manifest.intact else [("the Content Credentials do not match the file: it was altered "
                                             "after signing, or the manifest was tampered with")]
        return _describe(session, VerificationReport(found=True, method="c2pa", manifest=manifest_part,
                                                     watermark=watermark_part, altered=altered, sha256=digest,
                                                     notes=notes), image, generation, pixels, viewer)
    # 2. the invisible watermark
    if reading and (found := _image_by_watermark(session, reading)):
        image, generation = found
        notes = ["no valid Content Credentials; identified by the invisible watermark"]
        return _describe(session, VerificationReport(found=True, method="watermark", manifest=manifest_part,
                                                     watermark=watermark_part,
                                                     altered=digest != image.delivery_sha256, sha256=digest,
                                                     notes=notes), image, generation, pixels, viewer)
    # 3. the perceptual hash of what we delivered
    if (found := _image_by_perceptual_hash(session, pixels)):
        image, generation, distance = found
        report = VerificationReport(found=True, method="perceptual_hash", manifest=manifest_part,
                                    watermark=watermark_part, altered=digest != image.delivery_sha256,
                                    sha256=digest, perceptual_distance=distance,
                                    notes=["matched by appearance only: a close match, not a proof"])
        return _describe(session, report, image, generation, pixels, viewer)
    return VerificationReport(found=False, method=None, manifest=manifest_part, watermark=watermark_part,
                              altered=None, sha256=digest,
                              notes=["no Content Credentials, watermark or close match from this foundry"])


def _image_by_claim(session: Session, claim: dict) -> tuple[GeneratedImage, Generation] | None:
    try:
        generation_id = uuid.UUID(str(claim.get("generation_id")))
        index = int(claim.get("image_index"))
    except (TypeError, ValueError):
        return None
    return _image(session, generation_id, index)


def _image_by_watermark(session: Session, reading: watermark.WatermarkReading):
    return _image(session, reading.generation_id, reading.index)


def _image(session: Session, generation_id: uuid.UUID, index: int) -> tuple[GeneratedImage, Generation] | None:
    row = session.execute(select(GeneratedImage, Generation).join(Generation)
                          .where(GeneratedImage.generation_id == generation_id, GeneratedImage.index == index)).first()
    return (row[0], row[1]) if row else None


def _image_by_perceptual_hash(session: Session, pixels: Image.Image):
    value = perceptual_hash(pixels, opaque=True)
    rows = session.execute(select(GeneratedImage.id, GeneratedImage.perceptual_hash)).all()
    found = nearest_hash(np.array([phash_from_hex(row[1]) for row in rows], dtype=np.uint64), value)
    if found is None or found[1] > LOOKUP_DISTANCE:
        return None
    image = session.get(GeneratedImage, rows[found[0]][0])
    return image, session.get(Generation, image.generation_id), found[1]


def _describe(session: Session, report: VerificationReport, image: GeneratedImage, generation: Generation,
              pixels: Image.Image, viewer: Principal) -> VerificationReport:
    if sees_generation(viewer=viewer, generation_tenant_id=generation.tenant_id):
        report.generation = {"id": str(generation.id), "created_at": generation.created_at.isoformat(),
                             "status": generation.status, "refunded": generation.refunded_at is not None}
        report.image_index = image.index
    else:
        if report.watermark is not None:  # the watermark spells out the generation id: keep only that it was read
            report.watermark = {"detected": True, "corrected_bytes": report.watermark["corrected_bytes"]}
        report.notes.append("made by this foundry for another customer: its generation record is not shown")
    if report.perceptual_distance is None:
        report.perceptual_distance = hamming(perceptual_hash(pixels.resize((image.width, image.height),
                                                                           Image.Resampling.BOX), opaque=True),
                                             phash_from_hex(image.perceptual_hash))
    chain = registry_service.lineage(session=session, model_id=generation.model_id)
    model = chain[0]
    report.model = {"id": str(model.id), "name": model.name, "kind": model.kind,
                    "weights_sha256": model.weights_sha256, "licensed_only": model.licensed_only}
    report.lineage = [{"model_id": str(m.id), "name": m.name, "kind": m.kind,
                       "snapshot_id": str(m.snapshot_id) if m.snapshot_id else None,
                       "snapshot_merkle_root": m.snapshot_merkle_root, "weights_sha256": m.weights_sha256}
                      for m in chain]
    snapshot_ids = [m.snapshot_id for m in chain if m.snapshot_id]
    if snapshot_ids:
        licenses = Counter(dict(session.execute(
            select(LicenseGrant.license_code, func.count()).join(SnapshotEntry, SnapshotEntry.grant_id == LicenseGrant.id)
            .where(SnapshotEntry.snapshot_id.in_(snapshot_ids)).group_by(LicenseGrant.license_code)).all()))
        report.licenses = [{"license_code": code, "assets": count} for code, count in licenses.most_common()]
    # A blended attribution has two lines (pro rata and influence) per contributor: count people, not lines.
    shares = session.execute(select(Contributor.display_name, func.sum(AttributionLine.share_ppm).label("ppm"))
                             .join(Contributor, Contributor.id == AttributionLine.contributor_id)
                             .where(AttributionLine.generation_id == generation.id)
                             .group_by(Contributor.id, Contributor.display_name)
                             .order_by(func.sum(AttributionLine.share_ppm).desc(), Contributor.display_name)).all()
    report.contributors = {"count": len(shares), "method": generation.attribution.get("method"),
                           "top": [{"display_name": name, "share_ppm": int(ppm)} for name, ppm in shares[:10]]}
    return report
