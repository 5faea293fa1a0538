// The console's progressive enhancement: local times, confirmations, live log, auto-refresh.
(function () {
  "use strict";
  var pad = function (n) { return String(n).padStart(2, "0"); };

  function localText(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) + " " +
      pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  function localize(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (isNaN(date.getTime())) { return; }
      el.textContent = localText(date);
      el.title = el.getAttribute("datetime") + " (UTC)";
    });
  }

  function localInputs() {
    document.querySelectorAll("input[data-local-input]").forEach(function (input) {
      var given = input.getAttribute("value");
      if (given && /Z$|[+-]\d\d:\d\d$/.test(given)) {
        var date = new Date(given);
        if (!isNaN(date.getTime())) {
          input.value = localText(date).replace(" ", "T").slice(0, 16);
        }
      }
    });
    document.querySelectorAll("form").forEach(function (form) {
      form.addEventListener("submit", function () {
        form.querySelectorAll("input[data-local-input]").forEach(function (input) {
          if (!input.value || !input.name) { return; }
          var hidden = document.createElement("input");
          hidden.type = "hidden";
          hidden.name = input.name;
          hidden.value = new Date(input.value).toISOString();
          input.removeAttribute("name");
          form.appendChild(hidden);
        });
      });
    });
  }

  function confirmations() {
    document.querySelectorAll("[data-confirm]").forEach(function (button) {
      button.addEventListener("click", function (event) {
        if (!window.confirm(button.getAttribute("data-confirm"))) { event.preventDefault(); }
      });
    });
  }

  function autorefresh() {
    var el = document.querySelector("[data-autorefresh]");
    if (el) {
      var seconds = Number(el.getAttribute("data-autorefresh")) || 2;
      window.setTimeout(function () { window.location.reload(); }, seconds * 1000);
    }
  }

  function cell(row, label, node) {
    var td = document.createElement("td");
    td.setAttribute("data-label", label);
    if (typeof node === "string") { td.textContent = node; } else { td.appendChild(node); }
    row.appendChild(td);
    return td;
  }

  function link(href, text) {
    var a = document.createElement("a");
    a.href = href;
    if (typeof text === "string") { a.textContent = text; } else { a.appendChild(text); }
    return a;
  }

  function logRow(log) {
    var row = document.createElement("tr");
    row.setAttribute("data-id", log.id);
    row.className = "fresh";
    var time = document.createElement("time");
    time.setAttribute("datetime", log.created_at);
    time.textContent = log.created_at;
    var base = "/console/integrations/" + log.integration_id;
    cell(row, "Time", link(base + "/jobs/" + log.job_id, time));
    cell(row, "Integration", link(base, log.integration_name));
    var badge = document.createElement("span");
    badge.className = "badge " + (log.succeeded ? "badge-succeeded" : "badge-failed");
    badge.textContent = log.succeeded ? "ok" : "failed";
    cell(row, "Outcome", badge);
    cell(row, "Attempt", String(log.attempt));
    cell(row, "HTTP", log.status_code === null ? "—" : String(log.status_code));
    cell(row, "Duration", Math.round(log.processing_time * 1000) + " ms");
    cell(row, "Detail", (log.error_detail || "").slice(0, 120)).className = "small err";
    localize(row);
    return row;
  }

  function liveLog() {
    var table = document.getElementById("log-table");
    if (!table || !window.EventSource) { return; }
    var state = document.getElementById("live-state");
    var body = document.getElementById("log-rows");
    var source = new EventSource(table.getAttribute("data-stream"));
    source.onopen = function () { state.textContent = "live"; state.className = "live on"; };
    source.onerror = function () {
      state.textContent = "reconnecting… (is the hub running?)";
      state.className = "live off";
    };
    source.addEventListener("log", function (message) {
      var log = JSON.parse(message.data);
      if (body.querySelector('tr[data-id="' + log.id + '"]')) { return; }
      body.insertBefore(logRow(log), body.firstChild);
      while (body.rows.length > 500) { body.deleteRow(body.rows.length - 1); }
      table.hidden = false;
      document.getElementById("logs-empty").hidden = true;
    });
  }

  // The integration form: show (and send) only the chosen type's configuration fields.
  function typeFields() {
    var select = document.querySelector("select[data-type-switch]");
    if (!select) { return; }
    var show = function () {
      document.querySelectorAll("fieldset[data-type-fields]").forEach(function (set) {
        var on = set.getAttribute("data-type-fields") === select.value;
        set.hidden = !on;
        set.disabled = !on;
      });
    };
    select.addEventListener("change", show);
    show();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.documentElement.classList.add("js");
    typeFields();
    localize(document);
    localInputs();
    confirmations();
    autorefresh();
    liveLog();
  });
})();
