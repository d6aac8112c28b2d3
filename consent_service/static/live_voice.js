// Live voice enrollment: record the person reading the page's phrase with the microphone
// (MediaRecorder, Opus in WebM where the browser has it) and upload the recording. Served as a
// file: the CSP allows no inline script; the page's messages come in data- attributes.
"use strict";
(function () {
  const root = document.getElementById("live-voice");
  if (!root) {
    return;
  }
  const messages = document.getElementById("voice-messages").dataset;
  const instruction = document.getElementById("voice-instruction");
  const meter = document.getElementById("voice-meter");
  const elapsedBox = document.getElementById("voice-elapsed");
  const startButton = document.getElementById("voice-start");
  const stopButton = document.getElementById("voice-stop");
  const errorBox = document.getElementById("voice-error");
  const minSeconds = Number(root.dataset.minSeconds);
  const maxSeconds = Number(root.dataset.maxSeconds);
  // The first the browser can record; "" lets it choose (Safari records MP4/AAC).
  const TYPES = [
    "audio/webm;codecs=opus",
    "audio/webm",
    "audio/ogg;codecs=opus",
    "audio/mp4",
    "",
  ];
  let stream = null;
  let recorder = null;
  let chunks = [];
  let startedAt = 0;
  let timer = null;

  function clock(seconds) {
    const s = Math.floor(seconds);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  document.getElementById("voice-limit").textContent = clock(maxSeconds);

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = false;
  }

  function say(text) {
    instruction.textContent = text;
  }

  function seconds() {
    return (performance.now() - startedAt) / 1000;
  }

  function stopMicrophone() {
    if (stream) {
      stream.getTracks().forEach((track) => track.stop());
      stream = null;
    }
  }

  function tick() {
    const s = seconds();
    elapsedBox.textContent = clock(s);
    meter.dataset.seconds = String(Math.floor(s));
    if (s >= minSeconds && stopButton.disabled && recorder.state === "recording") {
      stopButton.disabled = false;
      say(messages.stopWhenDone);
    }
    if (s >= maxSeconds) {
      finish();
    }
  }

  function finish() {
    if (!recorder || recorder.state !== "recording") {
      return;
    }
    clearInterval(timer);
    stopButton.disabled = true;
    meter.classList.remove("recording");
    recorder.stop(); // "stop" fires once the last data is in
  }

  startButton.addEventListener("click", async () => {
    errorBox.hidden = true;
    if (!window.MediaRecorder || !navigator.mediaDevices) {
      showError(messages.unsupported);
      return;
    }
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: true },
        video: false,
      });
    } catch (err) {
      showError(messages.microphoneError);
      return;
    }
    const type = TYPES.find((t) => t === "" || MediaRecorder.isTypeSupported(t));
    try {
      recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
    } catch (err) {
      stopMicrophone();
      showError(messages.unsupported);
      return;
    }
    root.dataset.mimeType = recorder.mimeType;
    chunks = [];
    recorder.addEventListener("dataavailable", (event) => {
      if (event.data && event.data.size > 0) {
        chunks.push(event.data);
      }
    });
    recorder.addEventListener("stop", () => {
      stopMicrophone();
      upload(seconds());
    });
    recorder.start(1000); // a chunk a second: nothing is lost if the page stops early
    startedAt = performance.now();
    startButton.disabled = true;
    meter.hidden = false;
    meter.classList.add("recording");
    root.dataset.state = "recording";
    say(`${messages.reading} ${messages.keepReading}`);
    timer = setInterval(tick, 250);
  });

  stopButton.addEventListener("click", () => {
    if (seconds() >= minSeconds) {
      finish();
    }
  });

  async function upload(duration) {
    root.dataset.state = "uploading";
    if (duration < minSeconds || !chunks.length) {
      root.dataset.state = "failed";
      showError(messages.tooShort);
      return;
    }
    const blob = new Blob(chunks, { type: recorder.mimeType || chunks[0].type });
    const base = (blob.type || "audio/webm").split(";")[0];
    const extension = { "audio/webm": "webm", "audio/ogg": "ogg", "audio/mp4": "m4a" }[base];
    const form = new FormData();
    form.append("recording", blob, `recording.${extension || "bin"}`);
    say(messages.uploading);
    const sent = await window.sendEnrollment(root, form);
    if (sent.ok) {
      root.dataset.state = "sent";
    } else {
      root.dataset.state = "failed";
      showError(sent.error || (sent.status ? `${messages.failed} (${sent.status})` : messages.failed));
    }
  }
})();
