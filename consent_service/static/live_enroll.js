// Live face enrollment: open the camera, take one picture per challenge step when the person
// presses Capture, and upload them. Served as a file: the CSP allows no inline script.
"use strict";
(function () {
  const root = document.getElementById("live-enroll");
  if (!root) {
    return;
  }
  const steps = root.dataset.steps.split(",");
  const messages = document.getElementById("live-messages").dataset;
  const video = document.getElementById("live-video");
  const instruction = document.getElementById("live-instruction");
  const startButton = document.getElementById("live-start");
  const captureButton = document.getElementById("live-capture");
  const errorBox = document.getElementById("live-error");
  const items = Array.from(document.querySelectorAll("#live-steps li"));
  const pictures = [];
  let stream = null;

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = false;
  }

  function showStep(index) {
    items.forEach((item, i) => item.classList.toggle("current", i === index));
    instruction.textContent = items[index].textContent.trim() + " " + messages.press;
    instruction.dataset.step = steps[index];
  }

  function stopCamera() {
    if (stream) {
      stream.getTracks().forEach((track) => track.stop());
      stream = null;
    }
  }

  startButton.addEventListener("click", async () => {
    errorBox.hidden = true;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { facingMode: "user", width: { ideal: 640 }, height: { ideal: 480 } },
        audio: false,
      });
    } catch (err) {
      showError(messages.cameraError);
      return;
    }
    video.srcObject = stream;
    await video.play();
    startButton.disabled = true;
    captureButton.disabled = false;
    showStep(0);
  });

  captureButton.addEventListener("click", () => {
    // The frame is copied now, synchronously; encoding it may finish later.
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    pictures.push(new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92)));
    if (pictures.length < steps.length) {
      showStep(pictures.length);
      return;
    }
    captureButton.disabled = true;
    items.forEach((item) => item.classList.remove("current"));
    instruction.textContent = messages.uploading;
    delete instruction.dataset.step;
    stopCamera();
    upload();
  });

  async function upload() {
    const form = new FormData();
    const blobs = await Promise.all(pictures);
    blobs.forEach((blob, i) => form.append("frames", blob, `${i + 1}-${steps[i]}.jpg`));
    const sent = await window.sendEnrollment(root, form);
    if (!sent.ok) {
      instruction.textContent = messages.done;
      showError(sent.error || sent.reason || `Upload failed (${sent.status}).`);
    }
  }
})();
