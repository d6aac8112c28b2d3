// Small behaviours of every page, in a static file (no inline handlers: the CSP's script-src
// stays 'self'):
// - destructive actions are confirmed: a form with data-confirm="question" asks before it is sent;
// - a switch with data-submit-on-change sends its form when flipped (its button, for pages
//   without script, is hidden: class js-hidden).
document.documentElement.classList.add("js");
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
document.addEventListener("change", (event) => {
  const input = event.target;
  if (input instanceof HTMLInputElement && input.hasAttribute("data-submit-on-change") && input.form) {
    input.form.requestSubmit();
  }
});
