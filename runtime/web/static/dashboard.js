// The runtime dashboard: local times, the runs table's auto-refresh, filter chips.
// Plain JavaScript, no build step; every page works without it.
(function () {
  "use strict";

  var pad = function (n) { return String(n).padStart(2, "0"); };

  // Each <time datetime="ISO-UTC"> shows the viewer's local time; its title keeps UTC.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at)) return;
      el.textContent = at.getFullYear() + "-" + pad(at.getMonth() + 1) + "-" + pad(at.getDate()) +
        " " + pad(at.getHours()) + ":" + pad(at.getMinutes()) + ":" + pad(at.getSeconds());
    });
  }

  // The runs table, and a run's page until the run ends, reload themselves: the page's
  // own URL (filters and page included; data-source where the page answered a POST) is
  // fetched again and the part swapped when it changed, while the toggle is on and the
  // tab is visible. A part marked data-final (an ended run) stops the reloading.
  function autoRefresh() {
    var toggle = document.getElementById("auto-refresh");
    if (!toggle) return;
    var target = document.getElementById(toggle.dataset.target);
    var state = document.getElementById("refresh-state");
    var source = toggle.dataset.source || location.href;
    var shown = target.innerHTML;  // as served: read before localTimes rewrites the times
    var key = "runtime.autoRefresh";
    toggle.checked = localStorage.getItem(key) !== "off";
    toggle.addEventListener("change", function () {
      localStorage.setItem(key, toggle.checked ? "on" : "off");
      state.textContent = "";
    });
    var busy = false;
    var timer = setInterval(function () {
      if (!toggle.checked || document.hidden || busy) return;
      busy = true;
      fetch(source, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (!response.ok || response.redirected) throw new Error(String(response.status));
          return response.text();
        })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(target.id);
          if (!fresh) throw new Error("no " + target.id);
          if (fresh.innerHTML !== shown) {
            shown = fresh.innerHTML;
            target.innerHTML = shown;
            localTimes(target);
          }
          var now = new Date();
          state.textContent = "· updated " + pad(now.getHours()) + ":" + pad(now.getMinutes()) + ":" + pad(now.getSeconds());
          if (fresh.hasAttribute("data-final")) {
            clearInterval(timer);
            toggle.closest("label").remove();
          }
        })
        .catch(function () { state.textContent = "· refresh failed, retrying"; })
        .finally(function () { busy = false; });
    }, 5000);
  }

  // Filter chips apply at once. Actions ask no confirm(): automation dismisses one it
  // does not expect, and a canceled run can be retried.
  function forms() {
    document.querySelectorAll("form[data-autosubmit] input[type=checkbox]").forEach(function (box) {
      box.addEventListener("change", function () { box.form.requestSubmit(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    autoRefresh();
    localTimes(document);
    forms();
  });
})();
