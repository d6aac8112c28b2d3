"""Debian's Chromium (headless, driven by Playwright) for the browser tests: the app served over
real HTTP on 127.0.0.1, and a browser whose fake camera and microphone play files the test made
(`--use-file-for-fake-video-capture` / `--use-file-for-fake-audio-capture`). Playwright downloads
no browser here: it drives /usr/bin/chromium (.ci/run installs it)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
TIMEOUT_MS = 120_000


def require_chromium() -> None:
    """Outside CI a machine without Debian's Chromium skips the module; CI installs it."""
    if not CHROMIUM.exists() and not os.environ.get("CI"):
        pytest.skip(
            "Debian's chromium is not installed (apt-get install chromium)",
            allow_module_level=True,
        )


@contextmanager
def serve(app) -> Iterator[str]:
    """The app over real HTTP, so Chromium can load it; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def launch(
    playwright,
    profile: Path,
    *,
    video: Path | None = None,
    audio: Path | None = None,
    locale: str = "en-US",
):
    """A fresh Chromium profile with fake media devices (allowed without asking)."""
    profile.mkdir(parents=True, exist_ok=True)
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        f"--lang={locale}",
    ]
    if video is not None:
        args.append(f"--use-file-for-fake-video-capture={video}")
    if audio is not None:
        args.append(f"--use-file-for-fake-audio-capture={audio}")
    return playwright.chromium.launch_persistent_context(
        str(profile),  # a fresh --user-data-dir
        executable_path=str(CHROMIUM),
        headless=True,
        args=args,
        locale=locale,
        viewport={"width": 1100, "height": 900},
    )


def shot(page, folder: str, name: str) -> None:
    """A full-page screenshot under test-artifacts/<folder>/."""
    (ARTIFACTS / folder).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / folder / f"{name}.png"), full_page=True)
