"""Public shapes of licensing data, shared by the API and the CLI."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from foundry.licensing.terms import Use

# An SPDX license identifier (https://spdx.org/licenses/), optionally with the "+" (or later)
# operator, or a LicenseRef- for terms SPDX does not list.
SPDX_ID_PATTERN = r"^(LicenseRef-)?[A-Za-z0-9][A-Za-z0-9.-]*\+?$"


class LicenseTermsCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64, pattern=SPDX_ID_PATTERN,
                      description="SPDX identifier, e.g. CC-BY-NC-4.0, or LicenseRef-<name> for other terms.")
    name: str = Field(min_length=1, max_length=300, description="Full name, e.g. the SPDX full name.")
    url: str = Field(min_length=1, max_length=1000, pattern=r"^https?://[^\s]+$",
                     description="Canonical URL of the license text (http or https).")
    uses: list[Use] = Field(min_length=1, description="The uses a grant under these terms may carry.")
    requires_attribution: bool = True
    share_alike: bool = False

    @field_validator("name")
    @classmethod
    def _name_is_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the name is blank")
        return value.strip()


class LicenseTermsRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str
    name: str
    url: str
    uses: list[Use] = Field(validation_alias="grantable_uses",
                            description="The uses a grant under these terms may carry.")
    requires_attribution: bool
    share_alike: bool
    created_at: datetime
    created_by: str

    @field_validator("uses")
    @classmethod
    def _in_use_order(cls, value: list[Use]) -> list[Use]:
        return [use for use in Use if use in value]
