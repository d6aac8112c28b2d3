"""A small Python client for providers: gate a planned edit in a few lines, and every other
operation of the API (one method each; tests/functional/test_client.py holds the list to the
OpenAPI document).

client = ConsentClient("http://127.0.0.1:5000", api_key)
job = client.gate("face_swap", source="me.jpg", target="scene.jpg")
job["decision"]  # "allow" | "deny" | "needs_consent"

Answers are the API's JSON, typed as the TypedDicts below (the shapes of the service's response
models: `gate.schemas`, `consent_requests.schemas`, ... which this package sits below, so it
restates them; a test holds the two to the same fields). Enumerated values and times are the
JSON's strings.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import requests

from consent_service.vocabulary import JobStatus

# Receivers of the service's webhooks check each delivery with this (standard library only).
from consent_service.webhooks.signature import SignatureError, verify_signature

__all__ = [
    "ApiError",
    "ApiKeyExpired",
    "AuditCheckpoint",
    "Complaint",
    "ConsentClient",
    "ConsentRequest",
    "DecisionStatus",
    "Delivery",
    "Job",
    "Jwks",
    "ScopeMissing",
    "SignatureError",
    "Verification",
    "Webhook",
    "verify_signature",
]

PathLike = str | Path


# ------------------------------------------------------------------------------ the answers' shapes
class Media(TypedDict):
    position: int
    role: str  # source | target
    filename: str
    sha256: str
    error: str | None


class Finding(TypedDict):
    media: int
    role: str
    outcome: str  # consented | not_covered | revoked | ... | assurance_too_low
    subject_ref: str | None
    box: list[int] | None
    assurance: str | None  # uploaded | live | reviewed
    uncovered_purpose: str | None  # with not_covered: the job's purpose, when it alone was why


class Job(TypedDict):
    id: str
    status: str  # queued | processing | decided | failed
    operation: str
    purpose: str | None  # a code of the purpose vocabulary (`purposes()`), or None
    purpose_detail: str | None
    created_at: str
    attempts: int
    error: str | None
    decision: str | None  # allow | deny | needs_consent
    reasons: list[str]
    assurance_required: str | None
    media: list[Media]
    findings: list[Finding]
    token: str | None
    label: dict[str, Any] | None


class Purpose(TypedDict):
    code: str
    label_en: str
    label_zh: str


class SupersedingDecision(TypedDict):
    revision: int
    decision: str
    jti: str | None
    issued_at: str


class DecisionStatus(TypedDict):
    jti: str | None
    revision: int
    decision: str
    issued_at: str
    status: str  # valid | superseded | consent_withdrawn | consent_expired
    since: str | None
    superseded_by: SupersedingDecision | None
    checked_at: str


class GrantStanding(TypedDict):
    grant_id: str
    version: int
    current_version: int
    status: str  # active | revoked | refused | expired
    since: str | None


class Verification(TypedDict):
    valid: bool  # always True: an invalid token is an ApiError (422)
    expired: bool
    kid: str
    claims: dict[str, Any]
    status: DecisionStatus | None
    grants: list[GrantStanding]


class ConsentRequest(TypedDict):
    id: str
    status: str  # pending | approved | declined | expired
    job_id: str | None
    email: str | None
    operation: str
    roles: list[str]
    purpose: str
    message: str
    valid_until: str | None
    expires_at: str
    created_at: str
    answered_at: str | None
    grant_id: str | None


class Webhook(TypedDict):
    url: str
    events: list[str]
    active: bool
    created_at: str
    updated_at: str
    secret: NotRequired[str]  # only when new: the first configuration or a rotation


class Delivery(TypedDict):
    id: str
    event: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: str | None
    delivered_at: str | None
    created_at: str
    job_id: str | None


class Complaint(TypedDict):
    id: str
    reference: str
    kind: str
    status: str
    description: str
    location: str
    job_id: str | None
    token_jti: str | None
    question: str
    asked_at: str | None
    answer: str | None
    content_removed: bool | None
    answered_at: str | None
    outcome: str | None
    resolve_by: str
    created_at: str


class PublicJwk(TypedDict):
    kty: str
    crv: str
    x: str
    kid: str
    alg: str
    use: str


class Jwks(TypedDict):
    keys: list[PublicJwk]


class ConsistencyProof(TypedDict):
    first: int
    second: int
    proof: list[str]


class InclusionProof(TypedDict):
    entry: int
    leaf_index: int
    size: int
    leaf_hash: str
    proof: list[str]


class AuditCheckpoint(TypedDict):
    checkpoint: str
    origin: str
    size: int
    root: str
    timestamp: str
    verifier_key: str
    verifier_keys: list[str]
    consistency: ConsistencyProof | None
    inclusion: InclusionProof | None


class ApiError(RuntimeError):
    """The service answered with a problem: `status` and the problem body's `detail`."""

    def __init__(self, status: int, body: dict):
        self.status, self.body = status, body
        super().__init__(f"{status}: {body.get('detail') or body.get('title') or body}")


class ScopeMissing(ApiError):
    """403: the API key is not allowed the operation's scope. `required_scope` names it and
    `key_scopes` lists what the key may do; a provider admin creates a key with the scope in
    the portal (/portal/keys)."""

    def __init__(self, status: int, body: dict):
        super().__init__(status, body)
        self.required_scope: str | None = body.get("required_scope")
        self.key_scopes: list[str] = list(body.get("key_scopes") or [])


class ApiKeyExpired(ApiError):
    """401: the API key is past its expiry (e.g. its rotation's overlap ended): use the key
    that replaced it."""


def _error(status: int, body: dict) -> ApiError:
    # A problem's `code` names its kind; services from before it had the name in `title`.
    code = body.get("code") or body.get("title")
    if status == 403 and code == "ScopeMissing":
        return ScopeMissing(status, body)
    if status == 401 and code == "ApiKeyExpired":
        return ApiKeyExpired(status, body)
    return ApiError(status, body)


def _paths(value: PathLike | Iterable[PathLike] | None) -> list[Path]:
    if value is None:
        return []
    if isinstance(value, str | Path):
        return [Path(value)]
    return [Path(v) for v in value]


class ConsentClient:
    """One method per API operation. `api_key` may be left out by whoever only checks
    decisions (`verify`, `status`, `jwks`, `audit_checkpoint` need none)."""

    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self._http = requests.Session()
        if api_key is not None:
            self._http.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = timeout

    def close(self) -> None:
        self._http.close()

    def _answer(self, response: requests.Response) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:500]}
        if response.status_code >= 400:
            raise _error(response.status_code, body)
        return body

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self._answer(
            self._http.get(f"{self.url}{path}", params=params, timeout=self.timeout)
        )

    def _send(
        self, method: str, path: str, body: dict[str, Any], idempotency_key: str | None = None
    ) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._answer(
            self._http.request(
                method, f"{self.url}{path}", json=body, headers=headers, timeout=self.timeout
            )
        )

    def submit(
        self,
        operation: str,
        source: PathLike | Iterable[PathLike] | None = None,
        target: PathLike | Iterable[PathLike] | None = None,
        idempotency_key: str | None = None,
        purpose: str | None = None,
        purpose_detail: str | None = None,
    ) -> Job:
        """Send the media of a planned edit; returns the queued job. `purpose` is a code of
        `purposes()`: without one, only grants that cover every purpose cover the job."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        data = {"operation": operation}
        if purpose is not None:
            data["purpose"] = purpose
        if purpose_detail is not None:
            data["purpose_detail"] = purpose_detail
        with ExitStack() as stack:
            files = [
                (role, (p.name, stack.enter_context(open(p, "rb"))))
                for role, value in (("source", source), ("target", target))
                for p in _paths(value)
            ]
            return self._answer(
                self._http.post(
                    f"{self.url}/api/v1/jobs",
                    data=data,
                    files=files,
                    headers=headers,
                    timeout=self.timeout,
                )
            )

    def job(self, job_id: str) -> Job:
        while True:
            response = self._http.get(f"{self.url}/api/v1/jobs/{job_id}", timeout=self.timeout)
            if response.status_code != 429:
                return self._answer(response)
            # Over the key's rate limit (long polls do that): wait as long as the service asks.
            time.sleep(min(float(response.headers.get("Retry-After") or 1), 60.0))

    def wait(self, job_id: str, timeout: float = 300.0, poll: float = 0.5) -> Job:
        """Poll until the job is decided or failed."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in (JobStatus.DECIDED, JobStatus.FAILED):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {job_id} still {job['status']} after {timeout:.0f} s; "
                    "is a worker running?"
                )
            time.sleep(poll)

    def gate(
        self,
        operation: str,
        source: PathLike | Iterable[PathLike] | None = None,
        target: PathLike | Iterable[PathLike] | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
        timeout: float = 300.0,
        purpose: str | None = None,
        purpose_detail: str | None = None,
    ) -> Job:
        """Submit, then (with `wait`) poll until the job is decided or failed."""
        job = self.submit(
            operation,
            source=source,
            target=target,
            idempotency_key=idempotency_key,
            purpose=purpose,
            purpose_detail=purpose_detail,
        )
        return self.wait(job["id"], timeout=timeout) if wait else job

    def purposes(self) -> list[Purpose]:
        """The purposes a job may state (no key needed): the operator's vocabulary in force."""
        return self._get("/api/v1/purposes")["purposes"]

    def verify(
        self, token: str, audience: str | None = None, accept_expired: bool = False
    ) -> Verification:
        """Check a decision token (no key needed): its claims and whether its decision still
        stands. An invalid token is an ApiError (422) saying why; `audience` (a provider id)
        refuses a token issued to another; `accept_expired` checks one past its `exp` too."""
        body: dict[str, Any] = {"token": token, "accept_expired": accept_expired}
        if audience is not None:
            body["audience"] = audience
        return self._send("POST", "/api/v1/decisions/verify", body)

    def status(self, token_ref: str) -> DecisionStatus:
        """Whether a decision still stands, by its token's id (`jti`) or the token's SHA-256:
        `{"status": "valid" | "superseded" | "consent_withdrawn" | "consent_expired", ...}`.
        Ask before relying on a decision for longer than its token lives."""
        return self._get(f"/api/v1/decisions/{token_ref}/status")

    def jwks(self) -> Jwks:
        """The public keys that sign decision tokens, old and new (no key needed)."""
        return self._get("/.well-known/jwks.json")

    def audit_checkpoint(
        self, from_size: int | None = None, entry: int | None = None
    ) -> AuditCheckpoint:
        """The audit log's newest signed checkpoint (no key needed); `from_size` adds the
        consistency proof from a checkpoint you hold, `entry` an entry's inclusion proof."""
        params = {
            name: value
            for name, value in (("from", from_size), ("entry", entry))
            if value is not None
        }
        return self._get("/api/v1/audit/checkpoint", params=params)

    def label(self, job_id: str, path: PathLike) -> bytes:
        """The file at `path` (the output of an allowed job: JPEG, PNG or MP4) labelled: GB
        45438's AIGC metadata and a signed C2PA manifest naming the decision (scope `labels`).
        Write the answer where the labelled file goes."""
        file = Path(path)
        with open(file, "rb") as fh:
            response = self._http.post(
                f"{self.url}/api/v1/jobs/{job_id}/label",
                files=[("file", (file.name, fh))],
                timeout=self.timeout,
            )
        if response.status_code >= 400:
            self._answer(response)  # raises the problem as an ApiError
        return response.content

    def assurance_minimums(self) -> dict[str, str]:
        """The least assurance (`uploaded` < `live` < `reviewed`) each operation requires of
        every person found in this provider's jobs; an operation left out requires none."""
        return self._get("/api/v1/assurance-minimums")["minimums"]

    def set_assurance_minimums(self, minimums: dict[str, str]) -> dict[str, str]:
        """Replace the whole set (`{"face_swap": "live"}`; `{}` requires none); applies to
        decisions made from then on."""
        return self._send("PUT", "/api/v1/assurance-minimums", {"minimums": minimums})["minimums"]

    def request_consent(
        self,
        job_id: str | None = None,
        finding: int | None = None,
        subject_ref: str | None = None,
        email: str | None = None,
        operation: str | None = None,
        roles: Iterable[str] = (),
        purpose: str = "",
        message: str = "",
        valid_until: str | None = None,
        idempotency_key: str | None = None,
    ) -> ConsentRequest:
        """Ask a person for consent (scope `consent_requests`): for a job's needs_consent
        finding (`job_id` and the finding's index or `subject_ref`), or anyone by `email`. They
        get a link by e-mail; an approval decides the job again. `valid_until` (ISO 8601 with
        a zone) ends the consent asked for; left out, it lasts until revoked."""
        fields = {
            "job_id": job_id,
            "finding": finding,
            "subject_ref": subject_ref,
            "email": email,
            "operation": operation,
            "valid_until": valid_until,
        }
        body: dict[str, Any] = {name: value for name, value in fields.items() if value is not None}
        body.update(roles=list(roles), purpose=purpose, message=message)
        return self._send("POST", "/api/v1/consent-requests", body, idempotency_key)

    def consent_request(self, request_id: str) -> ConsentRequest:
        """A consent request and its `status`: pending, approved, declined or expired."""
        return self._get(f"/api/v1/consent-requests/{request_id}")

    def webhook(self) -> Webhook:
        """The webhook settings (scope `webhooks:admin`; an ApiError 404 before the first)."""
        return self._get("/api/v1/webhook")

    def set_webhook(
        self,
        url: str,
        events: Iterable[str] | None = None,
        active: bool = True,
        rotate_secret: bool = False,
    ) -> Webhook:
        """Create or update the webhook (scope `webhooks:admin`); `events` left out means all.
        The answer carries `secret`, the signing secret, only when it is new (the first time,
        or with `rotate_secret`): keep it to check each delivery with `verify_signature`."""
        body: dict[str, Any] = {"url": url, "active": active, "rotate_secret": rotate_secret}
        if events is not None:
            body["events"] = list(events)
        return self._send("PUT", "/api/v1/webhook", body)

    def complaint(self, complaint_id: str) -> Complaint:
        """A complaint about your content, as `complaint.opened` announced it (scope
        `jobs:read`): never the complainant's address or evidence."""
        return self._get(f"/api/v1/complaints/{complaint_id}")

    def answer_complaint(
        self, complaint_id: str, answer: str, content_removed: bool | None = None
    ) -> Complaint:
        """What you found and did (scope `jobs:write`); a later answer replaces the earlier
        one, a resolved complaint is an ApiError 409."""
        body: dict[str, Any] = {"answer": answer}
        if content_removed is not None:
            body["content_removed"] = content_removed
        return self._send("POST", f"/api/v1/complaints/{complaint_id}/answer", body)

    def webhook_deliveries(self, page_size: int = 50) -> Iterator[Delivery]:
        """Every webhook delivery, newest first, fetched a page at a time as it is read (the key
        needs `webhooks:admin`)."""
        params: dict[str, str | int] = {"limit": page_size}
        while True:
            body = self._get("/api/v1/webhook/deliveries", params=params)
            yield from body["deliveries"]
            if not body.get("next_cursor"):
                return
            params = {"limit": page_size, "cursor": body["next_cursor"]}
