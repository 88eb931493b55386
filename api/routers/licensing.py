"""License terms as data: which terms onboarding accepts, and which uses each can grant (admin only)."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import AdminPrincipal, SessionDep
from api.errors import error_responses
from foundry.licensing import service as licensing_service
from foundry.licensing.schemas import LicenseTermsCreate, LicenseTermsRead

router = APIRouter(prefix="/v1", tags=["licensing"])


@router.get("/license-terms", response_model=list[LicenseTermsRead])
def list_license_terms(_principal: AdminPrincipal, session: SessionDep) -> list[LicenseTermsRead]:
    return [LicenseTermsRead.model_validate(t) for t in licensing_service.list_license_terms(session=session)]


@router.post("/license-terms", status_code=status.HTTP_201_CREATED, response_model=LicenseTermsRead,
             responses=error_responses(409, s409="Terms with this code, name or URL are already registered."))
def add_license_terms(principal: AdminPrincipal, session: SessionDep, body: LicenseTermsCreate) -> LicenseTermsRead:
    """Register terms imports may accept. 409 ``license_terms_exist`` when the code, name or URL is taken."""
    with session.begin():
        terms = licensing_service.add_license_terms(session=session, terms=body, created_by=f"api:{principal}")
        return LicenseTermsRead.model_validate(terms)
