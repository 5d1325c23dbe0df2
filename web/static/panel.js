/* The room panel: polls its state every second and sends the room's commands.
   Every countdown is computed by the server against its clock (server_time), so
   the page shows what the service's clock says, never the tablet's. */
(function () {
  "use strict";

  var root = document.getElementById("panel");
  var base = root.dataset.base;
  var M = JSON.parse(document.getElementById("panel-messages").textContent);
  var state = JSON.parse(document.getElementById("panel-state").textContent);
  var csrfMeta = document.querySelector('meta[name="csrf-token"]');
  var csrf = csrfMeta ? csrfMeta.content : "";
  var busy = false;
  var lastWarning = null;
  var listKey = null;
  var ONE_BUTTON = { "one-button": true, manual: true };

  function $(id) { return document.getElementById(id); }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (match, key) {
      return Object.prototype.hasOwnProperty.call(values, key) ? String(values[key]) : match;
    });
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  /* 600 -> "10:00", 3725 -> "1:02:05" */
  function duration(total) {
    total = Math.max(0, Math.floor(total));
    var h = Math.floor(total / 3600);
    var m = Math.floor((total % 3600) / 60);
    var s = total % 60;
    return h > 0 ? h + ":" + pad(m) + ":" + pad(s) : pad(m) + ":" + pad(s);
  }

  function setText(el, text) {
    if (el.textContent !== text) { el.textContent = text; }
  }

  function setEnabled(button, enabled) {
    button.disabled = !enabled || busy;
  }

  function setPressed(button, pressed) {
    var value = pressed ? "true" : "false";
    if (button.getAttribute("aria-pressed") !== value) { button.setAttribute("aria-pressed", value); }
  }

  function find(sessions, id) {
    for (var i = 0; i < sessions.length; i += 1) {
      if (sessions[i].id === id) { return sessions[i]; }
    }
    return null;
  }

  function sitesText(sites) {
    return sites.map(function (site) {
      return site.centre + " – " + site.room + " (" + site.start_local + " " + site.timezone + ")";
    }).join(", ");
  }

  function renderList(s) {
    var key = JSON.stringify([s.sessions, s.current && s.current.session_id, s.clock.date]);
    if (key === listKey) { return; }
    listKey = key;
    var box = $("bookings");
    while (box.firstChild) { box.removeChild(box.firstChild); }
    ["today", "tomorrow"].forEach(function (day) {
      var rows = s.sessions.filter(function (x) { return x.day === day; });
      if (!rows.length) { return; }
      var h = document.createElement("h3");
      h.textContent = M[day];
      box.appendChild(h);
      var ul = document.createElement("ul");
      ul.className = "bookings";
      rows.forEach(function (row) {
        var li = document.createElement("li");
        li.className = "booking" + (s.current && s.current.session_id === row.id ? " is-current" : "");
        var time = document.createElement("span");
        time.className = "booking-time";
        time.textContent = row.start_local + "–" + row.end_local;
        var title = document.createElement("span");
        title.className = "booking-title";
        title.textContent = row.title || M.booked;
        li.appendChild(time);
        li.appendChild(title);
        if (row.sites.length) {
          var sites = document.createElement("span");
          sites.className = "booking-sites";
          sites.textContent = fill(M["with"], { sites: sitesText(row.sites) });
          li.appendChild(sites);
        }
        ul.appendChild(li);
      });
      box.appendChild(ul);
    });
    if (!s.sessions.length) {
      var p = document.createElement("p");
      p.className = "empty";
      p.textContent = M.no_more;
      box.appendChild(p);
    }
  }

  function render(s) {
    setText($("clock-time"), s.clock.time);
    setText($("clock-date"), s.clock.date);
    setText($("clock-zone"), s.clock.timezone + " (" + s.clock.utc_offset + ")");
    var presence = $("online");
    setText(presence, s.online ? M.online : M.offline);
    presence.className = "presence " + (s.online ? "is-online" : "is-offline");

    var cur = s.current;
    var nxt = s.next;
    var phase = M.free;
    var title = M.no_more;
    var countdown = "";
    var shown = cur || nxt;
    var row = shown ? find(s.sessions, shown.session_id) : null;
    if (cur) {
      // The phase label and the countdown read the same number, so they always agree.
      phase = fill(M["phase_" + cur.phase] || cur.phase, { time: duration(cur.ends_in) });
      title = cur.title || M.booked;
      if (cur.phase === "scheduled" || cur.phase === "preparing") {
        countdown = cur.starts_in > 0 ? fill(M.starts_in, { time: duration(cur.starts_in) }) : M.starting;
      } else {
        countdown = fill(M.time_left, { time: duration(cur.ends_in) });
      }
    } else if (nxt) {
      title = fill(M.next, { title: nxt.title || M.booked, time: nxt.start_local });
      if (nxt.day === "today") { countdown = fill(M.starts_in, { time: duration(nxt.starts_in) }); }
    }
    var times = "";
    if (row) {
      times = row.start_local + "–" + row.end_local + " (" + s.room.timezone + ")";
      if (cur && cur.phase !== "scheduled" && cur.phase !== "preparing") {
        times = fill(M.ends_at, { time: row.end_local }) + " (" + s.room.timezone + ")";
      }
    }
    setText($("now-times"), times);
    setText($("now-sites"), row && row.sites.length ? fill(M["with"], { sites: sitesText(row.sites) }) : "");
    setText($("now-phase"), phase);
    setText($("now-title"), title);
    setText($("countdown"), countdown);
    root.dataset.phase = cur ? cur.phase : "free";

    // The alert region stays in the page; its text changes only when the warning
    // does, so a screen reader announces each warning once. It names the end time
    // (the countdown above says how long is left), never a number of minutes.
    var warning = "";
    if (cur && cur.warning) {
      warning = fill(cur.warning === 1 ? M.warning_final : M.warning_first, { time: cur.end_local });
    }
    if (warning !== lastWarning) {
      lastWarning = warning;
      $("warning").textContent = warning;
      $("warning").className = warning ? "warning is-shown" : "warning";
    }

    var agent = s.agent;
    var reachable = s.online && agent !== null;
    setText($("controls-hint"), s.online ? "" : M.offline_hint);
    var join = $("join");
    var oneButton = cur && ONE_BUTTON[cur.connect_mode];
    join.hidden = !oneButton;
    if (oneButton && cur.joined) {
      setText(join, M.leave);
      join.dataset.action = "leave";
      setEnabled(join, reachable);
    } else {
      setText(join, M.join);
      join.dataset.action = "join";
      setEnabled(join, Boolean(oneButton && cur.joinable && reachable));
    }
    setPressed($("privacy"), Boolean(agent && agent.privacy));
    setEnabled($("privacy"), reachable);
    setPressed($("share"), Boolean(agent && agent.content_share));
    setEnabled($("share"), reachable);
    setEnabled($("extend"), Boolean(cur && cur.extendable));
    // Said only when extending is refused, with the reason: the room and its booking.
    var blocked = cur && cur.extend_blocked;
    var because = "";
    if (blocked) {
      because = fill(blocked.room ? M.extend_blocked : M.extend_blocked_unnamed, {
        room: blocked.room || "", start: blocked.start_local, end: blocked.end_local
      });
    }
    setText($("extend-hint"), because);
    renderList(s);
  }

  function showError(text) {
    setText($("result"), "");
    var box = $("command-error");
    box.textContent = "";
    box.textContent = text;
  }

  function succeeded(command, body) {
    if (command === "join") { return M.joined; }
    if (command === "leave") { return M.left; }
    if (command === "privacy") { return body.state && body.state.privacy ? M.privacy_on : M.privacy_off; }
    if (command === "content-share") {
      return body.state && body.state.content_share ? M.share_on : M.share_off;
    }
    return fill(M.extended, { time: body.session.end_local });
  }

  function send(command, args) {
    busy = true;
    render(state);
    setText($("command-error"), "");
    setText($("result"), M.working);
    var status = 0;
    fetch(base + "/command", {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ command: command, args: args })
    }).then(function (response) {
      status = response.status;
      return response.json().catch(function () { return null; });
    }).catch(function () {
      return null;
    }).then(function (body) {
      busy = false;
      if (body && body.state) {
        state.agent = body.state;
        if (state.current) { state.current.joined = body.state.session_id === state.current.session_id; }
      }
      if (body && body.ok) {
        setText($("result"), succeeded(command, body));
      } else {
        var code = body && body.error ? body.error.code : (status === 403 ? "csrf-failed" : "other");
        showError(M["error_" + code] || (body && body.error && body.error.message) || M.error_other);
      }
      render(state);
    });
  }

  function poll() {
    fetch(base + "/state", { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 404) {
          showError(M["error_panel-link-invalid"]);
          return null;
        }
        return response.ok ? response.json() : null;
      })
      .then(function (body) {
        if (body) {
          state = body;
          root.dataset.serverTime = body.server_time;
          if ($("command-error").textContent === M.connection_lost) { setText($("command-error"), ""); }
          render(state);
        }
      })
      .catch(function () {
        setText($("command-error"), M.connection_lost);
      })
      .then(function () { window.setTimeout(poll, 1000); });
  }

  $("join").addEventListener("click", function () {
    if (!state.current) { return; }
    var action = $("join").dataset.action === "leave" ? "leave" : "join";
    send(action, { session_id: state.current.session_id });
  });
  $("privacy").addEventListener("click", function () {
    send("privacy", { on: !(state.agent && state.agent.privacy) });
  });
  $("share").addEventListener("click", function () {
    send("content-share", { on: !(state.agent && state.agent.content_share) });
  });
  $("extend").addEventListener("click", function () {
    if (!state.current) { return; }
    send("extend", { session_id: state.current.session_id, minutes: state.extend_minutes });
  });

  render(state);
  window.setTimeout(poll, 1000);
}());
