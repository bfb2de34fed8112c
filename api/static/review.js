// The review queue: "select all on this page" ticks every offer of the page.
document.addEventListener("DOMContentLoaded", () => {
  const all = document.getElementById("tick-page");
  if (!all) return;
  all.addEventListener("change", () => {
    for (const box of document.querySelectorAll('#queue input[name="offer"]')) box.checked = all.checked;
    document.querySelector('input[name="scope"][value="ticked"]').checked = true;
  });
});
