// Holdfast admin UI: our own small script. Every form works without it; it
// only reads an uploaded policy file into the text area next to it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const input of document.querySelectorAll("input[type=file][data-fills]")) {
    input.addEventListener("change", () => {
      const target = document.getElementById(input.dataset.fills);
      const file = input.files && input.files[0];
      if (!target || !file) return;
      file.text().then((text) => { target.value = text; });
    });
  }
});
