// Bootfleet admin UI. Progressive enhancement only: every page works without this file,
// except that without it progress does not update live.
(function () {
  "use strict";

  // Confirmation: a form with data-confirm asks first and then sends confirmed=1, so the
  // server skips its own (no-JavaScript) confirmation page.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var message = form.getAttribute("data-confirm");
    if (!message || form.querySelector("input[name=confirmed]")) return;
    if (form.id === "bulk") {
      var all = form.querySelector("input[name=scope]:checked");
      var picked = all ? all.getAttribute("data-total") :
        form.querySelectorAll("input[name=mac]:checked").length;
      var action = form.querySelector("select[name=action]");
      if (!all && !picked) {
        ev.preventDefault();
        window.alert("Select at least one client first.");
        return;
      }
      message = action.options[action.selectedIndex].text + " for " + (all ? "all " : "") +
        picked + (all ? " matching" : " selected") + " client" +
        (String(picked) === "1" ? "" : "s") + "?";
    }
    if (!window.confirm(message)) {
      ev.preventDefault();
      return;
    }
    var input = document.createElement("input");
    input.type = "hidden";
    input.name = "confirmed";
    input.value = "1";
    form.appendChild(input);
    // The submission has its data now; drop the field so that coming back to this page
    // (history, back/forward cache) asks again.
    window.setTimeout(function () {
      input.remove();
    }, 0);
  });

  // "Select all on this page" for the bulk form (hidden without JavaScript).
  var all = document.getElementById("pick-all");
  if (all) {
    all.hidden = false;
    all.addEventListener("change", function () {
      document.querySelectorAll("input[name=mac]").forEach(function (box) {
        box.checked = all.checked;
      });
    });
  }

  // Live regions: poll the page's small JSON endpoint and swap in the regions that changed,
  // rendered on the server by the same templates as the page itself.
  var main = document.getElementById("main");
  var url = main && main.getAttribute("data-live");
  if (!url) return;
  var last = {};
  var busy = false;
  var note = document.createElement("p");
  note.className = "live-note";
  note.setAttribute("role", "status");
  note.hidden = true;
  main.insertBefore(note, main.firstChild);

  var FOCUSABLE = "a[href], button, input, select, textarea";

  function identity(el) {
    return el.id || el.getAttribute("href") || el.getAttribute("formaction") ||
      (el.form ? el.form.getAttribute("action") : "") + "#" + (el.name || el.textContent);
  }

  function swap(name, html) {
    var region = document.querySelector('[data-region="' + name + '"]');
    if (!region || last[name] === html) return;
    last[name] = html;
    // Keep keyboard focus on the same control across the swap, even if rows moved.
    var focused = document.activeElement;
    var wanted = focused && region.contains(focused) ? identity(focused) : null;
    region.innerHTML = html;
    if (wanted === null) return;
    var controls = region.querySelectorAll(FOCUSABLE);
    for (var i = 0; i < controls.length; i++) {
      if (identity(controls[i]) === wanted) {
        controls[i].focus();
        return;
      }
    }
  }

  function poll() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) window.location.reload();
        if (!response.ok) {
          return response.json().catch(function () {
            return {};
          }).then(function (body) {
            throw new Error((body.error && body.error.message) || "HTTP " + response.status);
          });
        }
        return response.json();
      })
      .then(function (data) {
        Object.keys(data.regions || {}).forEach(function (name) {
          swap(name, data.regions[name]);
        });
        note.hidden = true;
        main.setAttribute("data-live-ok", String(Date.now()));
      })
      .catch(function (error) {
        note.textContent = "Live updates paused (" + (error.message || "no answer") +
          "). Retrying…";
        note.hidden = false;
      })
      .then(function () {
        busy = false;
      });
  }

  var interval = parseInt(main.getAttribute("data-live-interval") || "2000", 10);
  window.setInterval(poll, interval);
  document.addEventListener("visibilitychange", poll);
})();
