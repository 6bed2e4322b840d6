// tenantscope dashboard: progressive enhancement only; every page works without it.
"use strict";

// Times in the viewer's own time zone (the server writes UTC).
function localTimes() {
  for (const el of document.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (!isNaN(at)) {
      el.title = el.textContent;
      el.textContent = at.toLocaleString();
    }
  }
}

// A running job's progress, live, from the API's Server-Sent Events.
function followJob() {
  const status = document.getElementById("job-status");
  if (!status) return;
  const state = status.textContent.trim();
  if (state !== "queued" && state !== "running") return;
  const bar = document.getElementById("job-progress");
  const text = document.getElementById("job-progress-text");
  const events = new EventSource("/api/v1/jobs/" + encodeURIComponent(status.dataset.job) + "/events");
  events.addEventListener("progress", (e) => {
    const job = JSON.parse(e.data);
    const p = job.progress || {};
    status.textContent = job.status;
    status.className = "badge " + job.status;
    if (p.planned) bar.max = p.planned;
    bar.value = p.done || 0;
    text.textContent = (p.done || 0) + " of " + (p.planned || 0) + (p.checks ? " checks" : " tenants") + (p.failed ? ", " + p.failed + " failed" : "");
    showChecks(p.checks);
  });
  events.addEventListener("end", () => {
    events.close();
    window.location.reload();
  });
  events.onerror = () => events.close();
}

// A doctor job's checks as each ends (built from text, never from markup).
function showChecks(checks) {
  const list = document.getElementById("doctor-checks");
  if (!list || !Array.isArray(checks)) return;
  list.replaceChildren(...checks.map((c) => {
    const item = document.createElement("li");
    const badge = document.createElement("span");
    badge.className = "badge " + String(c.status || "");
    badge.textContent = String(c.status || "");
    const title = document.createElement("b");
    title.textContent = String(c.title || "");
    item.append(badge, " ", title, ": " + String(c.summary || ""));
    return item;
  }));
}

// The runs page: each queued or running job's row follows it live; the page reloads once every
// followed job has ended, so that its results and duration appear.
function followJobs() {
  // A handful of streams at most: a browser keeps few connections to one server, and the rest of
  // the page must stay reachable.
  const live = Array.from(document.querySelectorAll("[data-live-job]")).slice(0, 4);
  let open = live.length;
  for (const status of live) {
    const id = status.dataset.liveJob;
    const bar = document.querySelector('[data-progress-job="' + CSS.escape(id) + '"]');
    const text = document.querySelector('[data-progress-text="' + CSS.escape(id) + '"]');
    const events = new EventSource("/api/v1/jobs/" + encodeURIComponent(id) + "/events");
    events.addEventListener("progress", (e) => {
      const job = JSON.parse(e.data);
      const p = job.progress || {};
      status.textContent = job.status;
      status.className = "badge " + job.status;
      if (bar) {
        if (p.planned) bar.max = p.planned;
        bar.value = p.done || 0;
      }
      if (text) text.textContent = (p.done || 0) + " of " + (p.planned || 0) + (p.failed ? ", " + p.failed + " failed" : "");
    });
    const done = () => {
      events.close();
      open -= 1;
      if (open === 0) window.location.reload();
    };
    events.addEventListener("end", done);
    events.onerror = done;
  }
}

// The partner page while a sign-in waits for its code: looks again every few seconds, so that the
// outcome shows without a manual reload.
function followPartnerSignIn() {
  if (document.getElementById("partner-pending")) {
    window.setTimeout(() => window.location.reload(), 3000);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes();
  followJob();
  followJobs();
  followPartnerSignIn();
});
