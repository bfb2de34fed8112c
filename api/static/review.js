// The review queue: "select all on this page" ticks every offer of the page; the count of ticked offers.
document.addEventListener("DOMContentLoaded", () => {
  const all = document.getElementById("tick-page");
  if (!all) return;
  const boxes = () => document.querySelectorAll('#queue input[name="offer"]');
  const count = document.getElementById("ticked-count");
  const recount = () => {
    const n = [...boxes()].filter((b) => b.checked).length;
    if (count) count.textContent = n.toLocaleString("zh-CN");
    if (n) document.querySelector('input[name="scope"][value="ticked"]').checked = true;
  };
  all.addEventListener("change", () => {
    for (const box of boxes()) box.checked = all.checked;
    recount();
  });
  for (const box of boxes()) box.addEventListener("change", recount);
});
