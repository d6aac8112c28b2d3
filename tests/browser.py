"""Debian's Chromium (headless, driven by Playwright) for the browser tests: the app served over
real HTTP on 127.0.0.1, and a browser whose fake camera and microphone play files the test made
(`--use-file-for-fake-video-capture` / `--use-file-for-fake-audio-capture`). Playwright downloads
no browser here: it drives /usr/bin/chromium (`make test` installs it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

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


def launch(
    playwright,
    profile: Path,
    *,
    video: Path | None = None,
    audio: Path | None = None,
    locale: str = "en-US",
    confirm: bool = True,
    **options,
):
    """A fresh Chromium profile with fake media devices (allowed without asking). Its pages
    answer a destructive action's confirm() with OK (`confirm=False`: Playwright's default,
    Cancel); `options` go to Playwright (viewport, user_agent ...)."""
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
    options.setdefault("viewport", {"width": 1100, "height": 900})
    context = playwright.chromium.launch_persistent_context(
        str(profile),  # a fresh --user-data-dir
        executable_path=str(CHROMIUM),
        headless=True,
        args=args,
        locale=locale,
        **options,
    )
    if confirm:
        for page in context.pages:
            page.on("dialog", _accept)
        context.on("page", lambda page: page.on("dialog", _accept))
    return context


def _accept(dialog) -> None:
    dialog.accept()


# getUserMedia answered by one <video> element playing a clip with both tracks (captureStream):
# its picture and its sound run on the element's one media clock, so they stay in step however
# loaded the machine is. Until the page's MediaRecorder starts, the element plays the clip's
# first START_AT seconds over and over (a person at rest, waiting; it must play: tried paused,
# the recorder recorded nothing); then it jumps to START_AT: a person who starts
# to follow the script when its first prompt appears. The clip needs frequent keyframes
# (live_clips.encode_webm's keyframe_every): with PyAV's default, Chromium's picture froze after
# a seek while the sound went on. The element sits in the page, unseen (a detached element's
# picture is not updated). The page's own code is untouched; only the devices are replaced (the
# page's constraints are ignored: the clip is the camera). It logs to the console where the clip
# stood when the recorder started.
CLIP_AS_DEVICES = """(() => {
  const CLIP_URL = %(url)s, START_AT = %(start_at)s;
  if (!navigator.mediaDevices) { return; }
  let element = null, captured = null, started = false;
  async function open() {
    const blob = await (await fetch(CLIP_URL)).blob();
    element = document.createElement("video");
    element.playsInline = true;
    element.src = URL.createObjectURL(blob);  // blob: the CSP's media-src allows it
    element.style.cssText = "position:fixed;left:0;top:0;width:2px;height:2px;opacity:0.01;" +
      "pointer-events:none;z-index:-1";
    document.body.append(element);
    element.addEventListener("timeupdate", () => {
      if (!started && element.currentTime >= START_AT - 0.4) { element.currentTime = 0; }
    });
    await element.play();
    captured = element.captureStream();
    for (let i = 0; i < 100; i += 1) {
      if (captured.getVideoTracks().length && captured.getAudioTracks().length) { break; }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    console.log(`clip as devices: ${captured.getTracks().map((t) => t.kind).join("+")}, ` +
      `playing its first ${START_AT} s over and over`);
    return captured;
  }
  navigator.mediaDevices.getUserMedia = () => (captured ? Promise.resolve(captured) : open());
  const Native = window.MediaRecorder;
  window.MediaRecorder = class extends Native {
    constructor(stream, options) {
      super(stream, options);
      if (stream !== captured) { return; }
      this.addEventListener("start", () => {
        started = true;
        const asked = performance.now();
        element.addEventListener("seeked", () => console.log(
          `clip at ${element.currentTime.toFixed(3)} s ` +
          `${Math.round(performance.now() - asked)} ms after the recorder started`
        ), { once: true });
        element.currentTime = START_AT;
        element.play();
      });
    }
  };
})();"""


def play_clip_as_devices(context, base_url: str, clip: bytes, *, start_at: float) -> None:
    """Every page of `context` gets `clip` (WebM with video and audio) from getUserMedia, in
    step (CLIP_AS_DEVICES); it is served at <base_url>/test-clip.webm to the pages only."""
    url = f"{base_url}/test-clip.webm"
    context.route(url, lambda route: route.fulfill(body=clip, content_type="video/webm"))
    context.add_init_script(
        CLIP_AS_DEVICES % {"url": json.dumps(url), "start_at": json.dumps(start_at)}
    )


def shot(page, folder: str, name: str) -> None:
    """A full-page screenshot under test-artifacts/<folder>/."""
    (ARTIFACTS / folder).mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / folder / f"{name}.png"), full_page=True)
