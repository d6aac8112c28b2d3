"""The label endpoint's request shape (its answer is the labelled file itself)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from consent_service.gate.schemas import UploadedFile


class LabelUpload(BaseModel):
    """The multipart form of `POST /api/v1/jobs/{job_id}/label`: the edited file."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    file: UploadedFile = Field(description="The output of the allowed edit: JPEG, PNG or MP4.")

    @classmethod
    def from_request(cls, files) -> LabelUpload:
        """Validate a request's files (raises pydantic's ValidationError)."""
        return cls.model_validate({name: files.get(name) for name in files})
