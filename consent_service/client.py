"""A small Python client for providers: gate a planned edit in a few lines.

client = ConsentClient("http://127.0.0.1:5000", api_key)
job = client.gate("face_swap", source="me.jpg", target="scene.jpg")
job["decision"]  # "allow" | "deny" | "needs_consent"
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path

import requests

from consent_service.vocabulary import JobStatus

# Receivers of the service's webhooks check each delivery with this (standard library only).
from consent_service.webhooks.signature import SignatureError, verify_signature

__all__ = [
    "ApiError",
    "ApiKeyExpired",
    "ConsentClient",
    "ScopeMissing",
    "SignatureError",
    "verify_signature",
]

PathLike = str | Path


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
    def __init__(self, url: str, api_key: str, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self._http = requests.Session()
        self._http.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = timeout

    def close(self) -> None:
        self._http.close()

    def _answer(self, response: requests.Response) -> dict:
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:500]}
        if response.status_code >= 400:
            raise _error(response.status_code, body)
        return body

    def submit(
        self, operation: str, source=None, target=None, idempotency_key: str | None = None
    ) -> dict:
        """Send the media of a planned edit; returns the queued job."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        with ExitStack() as stack:
            files = [
                (role, (p.name, stack.enter_context(open(p, "rb"))))
                for role, value in (("source", source), ("target", target))
                for p in _paths(value)
            ]
            return self._answer(
                self._http.post(
                    f"{self.url}/api/v1/jobs",
                    data={"operation": operation},
                    files=files,
                    headers=headers,
                    timeout=self.timeout,
                )
            )

    def job(self, job_id: str) -> dict:
        while True:
            response = self._http.get(f"{self.url}/api/v1/jobs/{job_id}", timeout=self.timeout)
            if response.status_code != 429:
                return self._answer(response)
            # Over the key's rate limit (long polls do that): wait as long as the service asks.
            time.sleep(min(float(response.headers.get("Retry-After") or 1), 60.0))

    def wait(self, job_id: str, timeout: float = 300.0, poll: float = 0.5) -> dict:
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
        source=None,
        target=None,
        wait: bool = True,
        idempotency_key: str | None = None,
        timeout: float = 300.0,
    ) -> dict:
        job = self.submit(operation, source=source, target=target, idempotency_key=idempotency_key)
        return self.wait(job["id"], timeout=timeout) if wait else job

    def status(self, token_ref: str) -> dict:
        """Whether a decision still stands, by its token's id (`jti`) or the token's SHA-256:
        `{"status": "valid" | "superseded" | "consent_withdrawn" | "consent_expired", ...}`.
        Ask before relying on a decision for longer than its token lives."""
        return self._answer(
            self._http.get(f"{self.url}/api/v1/decisions/{token_ref}/status", timeout=self.timeout)
        )

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
        response = self._http.get(f"{self.url}/api/v1/assurance-minimums", timeout=self.timeout)
        return self._answer(response)["minimums"]

    def set_assurance_minimums(self, minimums: dict[str, str]) -> dict[str, str]:
        """Replace the whole set (`{"face_swap": "live"}`; `{}` requires none); applies to
        decisions made from then on."""
        response = self._http.put(
            f"{self.url}/api/v1/assurance-minimums",
            json={"minimums": minimums},
            timeout=self.timeout,
        )
        return self._answer(response)["minimums"]

    def webhook_deliveries(self, page_size: int = 50) -> Iterator[dict]:
        """Every webhook delivery, newest first, fetched a page at a time as it is read (the key
        needs `webhooks:admin`)."""
        params: dict[str, str | int] = {"limit": page_size}
        while True:
            body = self._answer(
                self._http.get(
                    f"{self.url}/api/v1/webhook/deliveries", params=params, timeout=self.timeout
                )
            )
            yield from body["deliveries"]
            if not body.get("next_cursor"):
                return
            params = {"limit": page_size, "cursor": body["next_cursor"]}
