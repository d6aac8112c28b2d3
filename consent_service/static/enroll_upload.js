// Shared by the live enrollment pages (camera and microphone): send what was captured to the
// challenge's upload URL with the page's CSRF token. Served as a file: the CSP allows no inline
// script.
"use strict";
// Resolves to { ok: true } once the browser is on its way to the enrollment's status page, else
// to { ok: false, error, status } (error: the server's message, or null when none came back).
window.sendEnrollment = async function (root, form) {
  let response;
  try {
    response = await fetch(root.dataset.uploadUrl, {
      method: "POST",
      body: form,
      credentials: "same-origin",
      headers: { "X-CSRFToken": root.dataset.csrf },
    });
  } catch (err) {
    return { ok: false, error: null, status: 0, reason: String(err) };
  }
  const body = await response.json().catch(() => ({}));
  if (response.ok && body.status_url) {
    window.location.assign(body.status_url);
    return { ok: true };
  }
  return { ok: false, error: body.error || null, status: response.status };
};
