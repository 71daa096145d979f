// Evaluator pages: upload with progress (the form still works without script) and the live log tail.
(function () {
  "use strict";

  function uploadWithProgress(form) {
    var input = form.querySelector("input[type=file][name=image]");
    var bar = document.getElementById("upload-progress");
    var status = document.getElementById("upload-status");
    var button = form.querySelector("button[type=submit]");
    form.addEventListener("submit", function (ev) {
      if (!input || !input.files || !input.files.length || !window.XMLHttpRequest) return; // plain form post
      ev.preventDefault();
      var file = input.files[0];
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.getAttribute("action") || window.location.pathname);
      // The raw tar streams straight to disk on the server; the CSRF token travels in a header.
      xhr.setRequestHeader("Content-Type", "application/x-tar");
      xhr.setRequestHeader("X-CSRFToken", form.dataset.csrf);
      xhr.setRequestHeader("X-Filename", encodeURIComponent(file.name).slice(0, 200));
      xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
      xhr.setRequestHeader("Accept", "application/json");
      bar.hidden = false;
      button.disabled = true;
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) return;
        var p = Math.floor((e.loaded / e.total) * 100);
        bar.value = p;
        status.textContent = form.dataset.busy + " " + p + "%";
        if (p >= 100) status.textContent = form.dataset.done;
      });
      xhr.addEventListener("load", function () {
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status === 201 && body && (body.url || body.log_url)) {
          window.location.assign(body.url || body.log_url);
          return;
        }
        button.disabled = false;
        status.textContent = (body && body.error && body.error.message) || form.dataset.failed;
        status.classList.add("error");
      });
      xhr.addEventListener("error", function () {
        button.disabled = false;
        status.textContent = form.dataset.failed;
        status.classList.add("error");
      });
      xhr.send(file);
    });
  }

  function liveLog(pre) {
    var url = pre.dataset.logUrl;
    var statusEl = document.getElementById("submission-status");
    var outcomeEl = document.getElementById("outcome-text");
    var queueEl = document.getElementById("queue-position");
    if (!queueEl) {
      queueEl = document.createElement("p");
      queueEl.id = "queue-position";
      queueEl.className = "muted ev-queue";
      pre.parentNode.insertBefore(queueEl, pre);
    }
    function poll() {
      fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (s) {
          if (!s) return;
          // A withheld log never reaches the page, even if an answer carried one.
          if (!pre.dataset.withheld && !s.log_withheld && s.log && s.log !== pre.textContent) {
            var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
            pre.textContent = s.log;
            if (atEnd) pre.scrollTop = pre.scrollHeight;
          }
          if (statusEl && s.status) { statusEl.textContent = s.status; statusEl.className = "badge " + s.status; }
          if (outcomeEl && s.outcome_text) outcomeEl.textContent = s.outcome_text;
          queueEl.textContent = s.position ? ("#" + s.position + " · " + (s.wait_text || "")) : "";
          if (s.done) { window.location.reload(); return; }
          window.setTimeout(poll, 2000);
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    poll();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("upload-form");
    if (form) uploadWithProgress(form);
    var pre = document.getElementById("live-log");
    if (pre && pre.dataset.logUrl && ["queued", "running"].indexOf(pre.dataset.status) >= 0) liveLog(pre);
  });
})();
