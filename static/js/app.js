// Small progressive enhancements; every page works without script.
document.addEventListener("DOMContentLoaded", () => {
  // Confirm dangerous buttons: <button data-confirm="...">
  document.querySelectorAll("[data-confirm]").forEach((el) => {
    el.addEventListener("click", (ev) => { if (!window.confirm(el.dataset.confirm)) ev.preventDefault(); });
  });
});
