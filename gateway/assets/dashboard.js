// Arvis dashboard behaviour. Served from our own origin (CSP script-src 'self');
// no inline script exists, so everything is wired here through data- attributes.
// htmx (vendored beside this file) does the fragment refreshes; this file does
// what htmx does not: the streamed chat reply, and confirmations.
"use strict";

(function () {
  // --- Confirm before a destructive form is submitted: <form data-confirm="…">.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  }, true);

  // --- Chat: <form data-chat-stream="/chat/ID/stream" data-chat-resume="/chat/ID/jobs/">.
  // The reply streams in over server-sent events from the POST itself (the run
  // is watched before the message is stored, so no delta is missed). If the
  // connection drops before the reply, an EventSource on the job's resume URL
  // picks the run up again (it reconnects by itself with Last-Event-ID); the
  // final reply always replaces whatever was streamed, so a lost delta costs
  // nothing.
  function parseSse(buffer, onEvent) {
    var frames = buffer.split("\n\n");
    var rest = frames.pop();
    frames.forEach(function (frame) {
      var ev = { event: "message", data: "", id: null };
      frame.split("\n").forEach(function (line) {
        if (line.indexOf("event:") === 0) ev.event = line.slice(6).trim();
        else if (line.indexOf("data:") === 0) ev.data += (ev.data ? "\n" : "") + line.slice(5).replace(/^ /, "");
        else if (line.indexOf("id:") === 0) ev.id = line.slice(3).trim();
      });
      if (ev.data) onEvent(ev);
    });
    return rest;
  }

  function bubble(thread, role, label) {
    var div = document.createElement("div");
    div.className = "msg " + role;
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = label;
    div.appendChild(who);
    var body = document.createElement("div");
    body.className = "body";
    div.appendChild(body);
    thread.appendChild(div);
    return { div: div, body: body };
  }

  function setupChat(form) {
    var thread = document.getElementById("thread");
    var textarea = form.querySelector("textarea");
    var errorSlot = document.getElementById("message-error");
    var button = form.querySelector("button[type=submit]");
    var agentName = form.dataset.agentName || "agent";

    function showError(text) {
      errorSlot.textContent = text;
      errorSlot.hidden = !text;
      textarea.setAttribute("aria-invalid", text ? "true" : "false");
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var text = textarea.value;
      showError("");
      button.disabled = true;
      var reply = null;
      var jobId = null;
      var deltas = 0;
      var finished = false;

      function onEvent(ev) {
        var data;
        try { data = JSON.parse(ev.data); } catch (e) { return; }
        if (ev.event === "accepted") {
          jobId = data.jobId;
          var empty = document.getElementById("empty-thread");
          if (empty) empty.remove();
          var mine = bubble(thread, "user", "you");
          mine.body.textContent = text;
          textarea.value = "";
          reply = bubble(thread, "assistant streaming", agentName);
          reply.div.dataset.jobId = String(jobId);
          reply.div.setAttribute("aria-busy", "true");
        } else if (ev.event === "delta" && reply) {
          deltas += 1;
          reply.div.dataset.deltas = String(deltas);
          reply.body.textContent += data.text;
        } else if (ev.event === "reply" && reply) {
          finished = true;
          // Server-rendered from escaped markdown (dashboard/markdown.rs): no HTML of the model's.
          reply.body.innerHTML = data.html;
          reply.div.classList.remove("streaming");
          reply.div.removeAttribute("aria-busy");
          reply.div.dataset.done = "true";
        } else if (ev.event === "failed" && reply) {
          finished = true;
          reply.body.textContent = "The run failed: " + data.reason;
          reply.div.classList.remove("streaming");
          reply.div.classList.add("failed");
          reply.div.removeAttribute("aria-busy");
          reply.div.dataset.done = "true";
        }
        thread.scrollTop = thread.scrollHeight;
      }

      function resume() {
        if (finished || jobId === null) { button.disabled = false; return; }
        // Deltas from here on would leave a gap in the text: keep what came
        // and wait for the whole reply instead.
        if (reply) reply.div.dataset.resumed = "true";
        var source = new EventSource(form.dataset.chatResume + jobId + "/events");
        // EventSource retries by itself after a network error; a refusal
        // (the job is gone, the session ended) closes it for good.
        source.onerror = function () {
          if (source.readyState === EventSource.CLOSED && !finished) {
            showError("the reply could not be followed; reload the page to see it");
            button.disabled = false;
          }
        };
        ["reply", "failed"].forEach(function (name) {
          source.addEventListener(name, function (e) {
            onEvent({ event: name, data: e.data });
            if (finished) { source.close(); button.disabled = false; }
          });
        });
      }

      fetch(form.dataset.chatStream, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded", "Accept": "text/event-stream" },
        body: new URLSearchParams({ message: text }),
        credentials: "same-origin",
      }).then(function (res) {
        var type = res.headers.get("content-type") || "";
        if (!res.ok || type.indexOf("text/event-stream") !== 0) {
          return res.json().then(function (body) {
            showError(body.error || ("request failed: " + res.status));
          }, function () { showError("request failed: " + res.status); }).then(function () {
            button.disabled = false;
          });
        }
        var reader = res.body.getReader();
        var decoder = new TextDecoder();
        var buffer = "";
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) { resume(); if (finished) button.disabled = false; return; }
            buffer = parseSse(buffer + decoder.decode(chunk.value, { stream: true }), onEvent);
            return pump();
          });
        }
        return pump();
      }).catch(function () {
        if (jobId === null) { showError("the dashboard could not be reached; try again"); button.disabled = false; }
        else resume();
      });
    });

    // Enter sends, Shift+Enter makes a new line.
    textarea.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        if (typeof form.requestSubmit === "function") form.requestSubmit();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-chat-stream]").forEach(setupChat);
    var thread = document.getElementById("thread");
    if (thread) thread.scrollTop = thread.scrollHeight;
  });
})();
