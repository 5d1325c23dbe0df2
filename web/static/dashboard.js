// The network dashboard, live: poll /dashboard/state every two seconds and patch the
// page in place (text and state classes of the elements marked data-field inside
// each data-key item, and the tooltips of those marked data-title-field). When rooms
// or sessions appear or go (the state's "layout" changes) the server-rendered
// fragment is swapped in instead. Changes worth hearing (a room going offline, a
// session going live, a site's media) are announced politely in the live region.
// No framework, no build step.
"use strict";

(function () {
  const POLL_MS = 2000;
  const live = document.getElementById("dashboard-live");
  const announcer = document.getElementById("dashboard-announcer");
  const problem = document.getElementById("dashboard-problem");
  if (!live) return;
  // What each item last announced, by key; filled from the first state, silently.
  let heard = null;
  let busy = false;

  function* items(state) {
    yield ["network", state];
    for (const centre of state.centres) yield [centre.key, centre];
    for (const room of state.rooms) yield [room.key, room];
    for (const session of state.sessions) {
      yield [session.key, session];
      for (const site of session.sites) yield [site.key, site];
    }
  }

  function find(key) {
    return document.querySelector('[data-key="' + CSS.escape(key) + '"]');
  }

  function patch(el, item) {
    for (const field of el.querySelectorAll("[data-field]")) {
      if (field.closest("[data-key]") !== el) continue; // belongs to a nested item
      const value = item[field.dataset.field];
      const text = value === null || value === undefined ? "" : String(value);
      if (field.textContent !== text) field.textContent = text;
      const classField = field.dataset.classField;
      if (classField) {
        const cls = (field.dataset.classPrefix || "state state-") + item[classField];
        if (field.className !== cls) field.className = cls;
      }
      const titleField = field.dataset.titleField;
      if (titleField) {
        const title = item[titleField] || "";
        if (!title) field.removeAttribute("title");
        else if (field.title !== title) field.title = title;
      }
    }
    for (const name of (el.dataset.mirror || "").split(" ").filter(Boolean)) {
      const value = String(item[name]);
      if (el.dataset[name] !== value) el.dataset[name] = value;
    }
  }

  function announce(messages) {
    if (!announcer || messages.length === 0) return;
    // Clear first so a repeated sentence is read again.
    announcer.textContent = "";
    window.setTimeout(() => { announcer.textContent = messages.join(". "); }, 50);
  }

  function listen(state) {
    const said = new Map();
    const messages = [];
    for (const [key, item] of items(state)) {
      if (!item.announce) continue;
      said.set(key, item.announce);
      if (heard !== null && heard.get(key) !== item.announce) messages.push(item.announce);
    }
    heard = said;
    announce(messages);
  }

  // "ok", or "lost" (no answer) / "login" (401): shown, and said once.
  function setProblem(kind) {
    if (!problem) return;
    const text = kind === "ok" ? "" : problem.dataset[kind];
    if (problem.textContent === text) return;
    problem.textContent = text;
    problem.hidden = kind === "ok";
    if (text) announce([text]);
  }

  async function swapFragment(state) {
    const response = await fetch(live.dataset.fragmentUrl, {
      cache: "no-store",
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error("fragment " + response.status);
    const focused = document.activeElement && document.activeElement.id;
    live.innerHTML = await response.text(); // rendered and escaped by the server
    live.dataset.layout = state.layout;
    if (focused) {
      const again = document.getElementById(focused);
      if (again) again.focus();
    }
  }

  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const response = await fetch(live.dataset.stateUrl, {
        cache: "no-store",
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.status === 401) {
        setProblem("login");
        return;
      }
      if (!response.ok) throw new Error("state " + response.status);
      const state = await response.json();
      if (state.layout !== live.dataset.layout) await swapFragment(state);
      for (const [key, item] of items(state)) {
        const el = find(key);
        if (el) patch(el, item);
      }
      listen(state);
      setProblem("ok");
    } catch (err) {
      setProblem("lost"); // the server may be restarting: try again at the next tick
    } finally {
      busy = false;
    }
  }

  refresh();
  window.setInterval(refresh, POLL_MS);
})();
