/* A run's admin page, live: follows the run's event stream and moves the panel without a reload.
 *
 * The stream is GET /api/<kind>/<id>/events/ (Server-Sent Events, `event: run`, data
 * {"id","kind","status","progress","stage","message","attempt","reason","at"}), same origin, with
 * the admin's session cookie; the stream starts with the run's state at once. When it cannot be
 * opened (no events endpoint, a server that refuses it, or one that sends nothing within 5 s, as
 * a WSGI server holding the stream back would), the page reads GET /api/<kind>/<id>/ every 2 s
 * instead, until the run ends.
 */
(function () {
  "use strict";
  var configNode = document.getElementById("run-live-config");
  var panel = document.getElementById("run-live");
  if (!configNode || !panel) return;
  var config = JSON.parse(configNode.textContent);
  var POLL_MS = 2000;
  var FIRST_EVENT_MS = 5000;
  var stream = null;
  var pollTimer = null;
  var ended = false;
  var loading = true; // the page's own state, before any update

  function byId(id) { return document.getElementById(id); }
  function has(list, value) { return list.indexOf(value) !== -1; }
  function setText(node, text) { if (node) node.textContent = text; }
  function readonlyOf(field) {
    return document.querySelector(".field-" + field + " .readonly");
  }

  function apply(state) {
    if (!state || !state.status) return;
    var status = state.status;
    var label = config.labels[status] || status;
    var badge = byId("run-live-status");
    badge.textContent = label;
    badge.dataset.status = status;
    badge.style.background = config.colours[status] || "#888";
    if (typeof state.progress === "number") {
      byId("run-live-progress").value = state.progress;
      setText(byId("run-live-percent"), state.progress + "%");
      setText(readonlyOf("progress"), String(state.progress));
      var listBar = readonlyOf("progress_bar");
      if (listBar) setText(listBar, state.progress + "%");
    }
    if (state.stage !== undefined) {
      setText(byId("run-live-stage"), state.stage || "");
      setText(readonlyOf("stage"), state.stage || "-");
    }
    if (state.message !== undefined) {
      setText(byId("run-live-message"), state.message || "");
      setText(readonlyOf("message"), state.message || "-");
    }
    if (typeof state.attempt === "number") {
      setText(byId("run-live-attempt"), "attempt " + state.attempt);
      setText(readonlyOf("attempt"), String(state.attempt));
    }
    setText(readonlyOf("status"), label);
    var cancelForm = byId("run-cancel-form");
    var retryForm = byId("run-retry-form");
    if (cancelForm) cancelForm.hidden = !has(config.active_statuses, status);
    if (retryForm) retryForm.hidden = !has(config.retryable_statuses, status);
    if (has(config.terminal, status)) finish();
  }

  function finish() {
    if (ended) return;
    ended = true;
    if (stream) stream.close();
    if (pollTimer) clearTimeout(pollTimer);
    byId("run-live-done").hidden = loading; // a run that had ended before the page was opened
    setText(byId("run-live-channel"), "ended");
  }

  function poll() {
    if (ended || !config.api_url) return;
    setText(byId("run-live-channel"), "updated every 2 s");
    fetch(config.api_url, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(apply)
      .catch(function () { /* the next poll tries again */ })
      .then(function () { if (!ended) pollTimer = setTimeout(poll, POLL_MS); });
  }

  function follow() {
    if (!config.events_url || !window.EventSource) { poll(); return; }
    var received = false;
    stream = new EventSource(config.events_url, {withCredentials: true});
    var silent = setTimeout(function () {
      if (received || ended || !stream) return;
      stream.close();
      stream = null;
      poll();
    }, FIRST_EVENT_MS);
    function onEvent(event) {
      received = true;
      clearTimeout(silent);
      setText(byId("run-live-channel"), "live");
      try { apply(JSON.parse(event.data)); } catch (error) { /* not a run event */ }
    }
    stream.addEventListener("run", onEvent);
    stream.onmessage = onEvent;
    stream.onopen = function () { setText(byId("run-live-channel"), "live"); };
    stream.onerror = function () {
      if (ended || !stream) return;
      // CLOSED: the server refused the stream (no endpoint, not an event stream): poll instead.
      // CONNECTING: the browser reconnects by itself, resuming from the last event id.
      if (stream && stream.readyState === EventSource.CLOSED) {
        clearTimeout(silent);
        stream = null;
        poll();
      } else if (!received) {
        setText(byId("run-live-channel"), "reconnecting…");
      }
    };
  }

  apply({status: config.status, progress: config.progress, stage: config.stage,
         message: config.message, attempt: config.attempt});
  loading = false;
  if (!ended) follow();
})();
