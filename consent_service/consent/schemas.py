"""The consent capability's API shapes: the purpose vocabulary a provider reads."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PurposePublic(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="What a job's `purpose` names.")
    label_en: str
    label_zh: str


class PurposeList(BaseModel):
    """The purposes in force (`GET /api/v1/purposes`); a retired code is refused for new jobs."""

    model_config = ConfigDict(extra="forbid")

    purposes: list[PurposePublic]
