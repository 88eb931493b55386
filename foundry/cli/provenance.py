"""``foundry provenance``: signing and verification."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from foundry.catalog import service as catalog_service
from foundry.cli.common import OPERATOR, console, fail
from foundry.config import get_settings
from foundry.db import session_factory
from foundry.errors import FoundryError
from foundry.generation.verification import verify_image
from provenance.c2pa_manifest import ContentCredentials, SigningNotConfigured, init_signing_ca

provenance_app = typer.Typer(help="Content Credentials signing and verification.", no_args_is_help=True)


@provenance_app.command("init-ca")
def provenance_init_ca(
    organization: Annotated[str, typer.Option(help="Organisation named in the certificates.")] = "Licensed Image Foundry",
    force: Annotated[bool, typer.Option(help="Replace existing signing material.")] = False,
) -> None:
    """Create the foundry's own C2PA signing CA and ES256 leaf, offline."""
    folder = get_settings().resolved_signing_dir
    try:
        paths = init_signing_ca(folder, organization=organization, overwrite=force)
    except FileExistsError as exc:
        raise fail(str(exc)) from None
    console.print(f"signing CA and leaf written to {folder} (private key {paths['signer-key.pem'].name}, mode 600)")


@provenance_app.command("verify")
def provenance_verify(image: Path) -> None:
    """Where an image came from: its Content Credentials, else its watermark, else its perceptual hash."""
    from dataclasses import asdict

    settings = get_settings()
    if not image.is_file():
        raise fail(f"{image} is not a file")
    try:
        credentials = ContentCredentials(settings.resolved_signing_dir)
        with session_factory(settings.resolved_database_url)() as session:
            report = verify_image(session=session, data=image.read_bytes(), credentials=credentials,
                                  limits=catalog_service.import_options(settings).limits, viewer=OPERATOR)
    except (FoundryError, SigningNotConfigured) as exc:
        raise fail(getattr(exc, "message", str(exc))) from None
    console.print_json(data=asdict(report))
