// Small behaviours of every page, in a static file (no inline handlers: the CSP's script-src
// stays 'self'):
// - destructive actions are confirmed: a form with data-confirm="question" asks before it is sent;
// - a switch with data-submit-on-change sends its form when flipped (its button, for pages
//   without script, is hidden: class js-hidden);
// - a table too wide for a phone scrolls inside itself (style.css) and can then take the
//   keyboard's focus, so it scrolls with the arrow keys too.
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

function focusableWhenScrolling() {
  for (const table of document.querySelectorAll("main table")) {
    if (table.scrollWidth > table.clientWidth + 1) {
      table.tabIndex = 0;
    } else {
      table.removeAttribute("tabindex");
    }
  }
}
document.addEventListener("DOMContentLoaded", focusableWhenScrolling);
window.addEventListener("resize", focusableWhenScrolling);
