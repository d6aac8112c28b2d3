// The live consent session: record one continuous clip (video and audio, MediaRecorder) while
// the page shows the script's moves, each for data-move-seconds, then the code to read aloud
// for data-code-seconds, then (for a grant or an approval) the sentence naming what the person
// consents to for data-statement-seconds; upload it with the page's CSRF token and follow the worker's check
// until it ends. Served as a file: the CSP allows no inline script; the page's words come in
// data- attributes.
"use strict";
(function () {
  const root = document.getElementById("live-session");
  if (!root) {
    return;
  }
  const messages = document.getElementById("live-messages").dataset;
  const moves = root.dataset.moves.split(",").filter((m) => m);
  const moveSeconds = Number(root.dataset.moveSeconds);
  const codeSeconds = Number(root.dataset.codeSeconds);
  const statementSeconds = Number(root.dataset.statementSeconds || 0);
  const maxSeconds = Number(root.dataset.maxSeconds);
  const video = document.getElementById("live-video");
  const prompt = document.getElementById("live-prompt");
  const codeBox = document.getElementById("live-code");
  const statementBox = document.getElementById("live-statement"); // null without a statement
  const clock = document.getElementById("live-clock");
  const openButton = document.getElementById("live-open");
  const startButton = document.getElementById("live-start");
  const errorBox = document.getElementById("live-error");
  // The first the browser can record; "" lets it choose.
  const TYPES = [
    "video/webm;codecs=vp8,opus",
    "video/webm;codecs=vp9,opus",
    "video/webm",
    "video/mp4",
    "",
  ];
  let stream = null;
  let recorder = null;
  let chunks = [];
  let timer = null;
  let startedAt = 0;

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = false;
  }

  function say(text, step) {
    prompt.textContent = text;
    if (step) {
      root.dataset.step = step;
    } else {
      delete root.dataset.step;
    }
  }

  function moveText(move) {
    // data-move-turn-left -> dataset.moveTurnLeft
    const key = "move" + move.split("_").map((w) => w[0].toUpperCase() + w.slice(1)).join("");
    return messages[key] || move;
  }

  function stopDevices() {
    if (stream) {
      stream.getTracks().forEach((track) => track.stop());
      stream = null;
    }
  }

  function elapsed() {
    return (performance.now() - startedAt) / 1000;
  }

  // Where the script stands at `t` seconds: a move, the code, or the end.
  function stepAt(t) {
    const index = Math.floor(t / moveSeconds);
    if (index < moves.length) {
      return { step: moves[index], text: moveText(moves[index]) };
    }
    if (t < moves.length * moveSeconds + codeSeconds) {
      return { step: "code", text: messages.read };
    }
    if (statementBox && t < moves.length * moveSeconds + codeSeconds + statementSeconds) {
      return { step: "statement", text: messages.readStatement };
    }
    return null;
  }

  function tick() {
    const t = elapsed();
    clock.textContent = `${Math.floor(t)} s`;
    const now = stepAt(t);
    if (now === null || t >= maxSeconds) {
      finish();
      return;
    }
    if (root.dataset.step !== now.step) {
      say(now.text, now.step);
      codeBox.hidden = now.step !== "code";
      if (statementBox) {
        statementBox.hidden = now.step !== "statement";
      }
    }
  }

  function finish() {
    clearInterval(timer);
    codeBox.hidden = true;
    if (statementBox) {
      statementBox.hidden = true;
    }
    clock.hidden = true;
    if (recorder && recorder.state === "recording") {
      recorder.stop(); // "stop" fires once the last data is in
    }
  }

  async function firstFrame() {
    // Start the clock only once the camera shows something.
    for (let i = 0; i < 100 && video.readyState < 2; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  // First the camera and microphone open, so the person sees themself and settles; then
  // Start records and runs the script from its first prompt.
  openButton.addEventListener("click", async () => {
    errorBox.hidden = true;
    if (!window.MediaRecorder || !navigator.mediaDevices) {
      showError(messages.unsupported);
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } },
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: true },
      });
    } catch (err) {
      showError(messages.cameraError);
      return;
    }
    video.srcObject = stream;
    await video.play();
    await firstFrame();
    openButton.disabled = true;
    startButton.disabled = false;
    root.dataset.state = "open";
    say(messages.ready, null);
  });

  startButton.addEventListener("click", () => {
    if (!stream) {
      return;
    }
    const type = TYPES.find((t) => t === "" || MediaRecorder.isTypeSupported(t));
    try {
      recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
    } catch (err) {
      stopDevices();
      showError(messages.unsupported);
      return;
    }
    chunks = [];
    recorder.addEventListener("dataavailable", (event) => {
      if (event.data && event.data.size > 0) {
        chunks.push(event.data);
      }
    });
    recorder.addEventListener("stop", () => {
      stopDevices();
      upload();
    });
    // The script's clock starts when the recorder does (its "start" event), not when Start
    // is pressed: the checks read the recording's first moment as the first prompt's.
    recorder.addEventListener("start", () => {
      startedAt = performance.now();
      root.dataset.startDelay = String(Math.round(startedAt - pressedAt));
      root.dataset.state = "recording";
      clock.hidden = false;
      tick();
      timer = setInterval(tick, 100);
    });
    startButton.disabled = true;
    const pressedAt = performance.now();
    recorder.start(1000); // a chunk a second: nothing is lost if the page stops early
  });

  async function upload() {
    root.dataset.state = "uploading";
    say(messages.uploading, null);
    if (!chunks.length) {
      root.dataset.state = "failed";
      showError(messages.failed);
      return;
    }
    const blob = new Blob(chunks, { type: recorder.mimeType || chunks[0].type });
    const form = new FormData();
    form.append("recording", blob, "session.webm");
    let response;
    try {
      response = await fetch(root.dataset.uploadUrl, {
        method: "POST",
        body: form,
        credentials: "same-origin",
        headers: { "X-CSRFToken": root.dataset.csrf },
      });
    } catch (err) {
      root.dataset.state = "failed";
      showError(messages.failed);
      return;
    }
    const body = await response.json().catch(() => ({}));
    if (!response.ok || !body.status_url) {
      root.dataset.state = "failed";
      showError(body.error || `${messages.failed} (${response.status})`);
      return;
    }
    root.dataset.state = "checking";
    say(messages.checking, null);
    follow(body.status_url);
  }

  async function follow(url) {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      let body;
      try {
        const response = await fetch(url, { credentials: "same-origin" });
        body = await response.json();
      } catch (err) {
        continue; // the server restarts, the network blinks: ask again
      }
      if (body.status === "passed") {
        root.dataset.state = "passed";
        say(messages.passed, null);
        if (body.next) {
          window.location.assign(body.next);
        }
        return;
      }
      if (body.status === "failed" || body.error) {
        root.dataset.state = "failed";
        say(messages.again, null);
        showError(body.message || body.error || messages.failed);
        return;
      }
    }
  }
})();
