/* telecentre guest page: a camera and microphone check, then the browser joins the
   session as a peer of the signalling protocol (docs/protocol.md), like a room agent.

   Rules it follows (the room agent's, room_agents/calls.py):
   - one RTCPeerConnection per remote peer, with exactly the ICE servers of the
     welcome (an empty list by default);
   - the later joiner offers: after `joined` it offers to every peer listed; on
     `peer-joined` it waits for the newcomer's offer; an offer replaces the older
     connection with that peer; an answer for another `conn` is ignored;
   - to members it sends complete SDPs (it does not trickle: room agents read no `candidate`
     messages), from which every candidate outside welcome.candidate_filter.allow is
     removed, mDNS `.local` names included; a `c=` line naming a removed address
     becomes 0.0.0.0;
   - it pings every welcome.heartbeat_interval; it leaves at the session's end (the
     `ended` session-state, or the end time on the server's clock).
   - content share (docs/protocol.md §18.4): its offers carry the camera, the
     microphone and a second, receive-only video section for content, in that order
     (the agents' order); in an offer it answers, content is the section whose
     a=msid track id starts with `content-` (or the second video section). Content
     is shown large over a strip of the sites while its frames keep coming, and the
     grid comes back 1.5 s after the last one (or at once when its track mutes or
     ends); with several sites sharing, the first by name is large, as on the room
     screens (room_agents/layout.py).
   - SFU sessions (docs/protocol.md §20): on `joined` with topology "sfu", or a
     `topology` message with a higher epoch, it closes every connection of the
     session and publishes its camera and microphone to the addressee `sfu` (never
     offering to members); it answers an offer from `sfu:<P>` on a new receive-only
     connection (adding no track of its own), which replaces an older one for P and
     shows as P's tile. Connections with the SFU trickle: the page sends its SDP at
     once, then each allowed candidate as a `candidate` message with that `conn`, then
     an end-of-candidates one. A publication that fails or is not connected by the
     connect deadline is offered again; for a subscription, `subscribe` asks the
     server for a fresh offer of P's publication. `peer-left` P closes `sfu:<P>`.
   - Layout and speaker (guest_layout.js, pure rules): the sites in the grid that
     keeps 16:9 pictures largest, or the content large over a strip; the site whose
     received audio is loud (getStats audio energy, read every 250 ms) is the
     speaker, its tile marked data-speaking="true", with hold and hysteresis.

   window.telecentreGuest is a read-only copy of its state, for people and tests:
   {state, peerId, sessionId, sessionState, end, peers: {peer_id: {name, centre,
   connection, framesDecoded, framesReceived, framesPerSecond, frameWidth,
   frameHeight, live, content: {received, framesDecoded, framesPerSecond,
   frameWidth, frameHeight, live}}}, contentShown: peer_id | null, errors: [codes],
   removedCandidates, sent: {offer, answer, candidate, subscribe}, topology, epoch,
   speaker: peer_id | null, publication: connection state | null}. A peer's figures
   above `content` are its camera's; `content.received` says a content track arrived
   from it. In an SFU session `peers` are keyed by the member P, not by `sfu:<P>`.
*/
(() => {
  "use strict";

  // --- localised times (every guest page, refusals included) -------------------------

  const lang = document.documentElement.lang || "en";
  // The page's language, in the browser's own variant of it when it has one (en-GB).
  const locale = (navigator.languages || []).find((l) => l.split("-")[0] === lang) || lang;
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

  function formatTime(epochSeconds) {
    return new Intl.DateTimeFormat(locale, { timeStyle: "short" }).format(new Date(epochSeconds * 1000));
  }

  function localiseTimes(yourTime) {
    for (const el of document.querySelectorAll("time[data-local]")) {
      const date = new Date(el.getAttribute("datetime"));
      if (Number.isNaN(date.getTime())) continue;
      const options = el.dataset.local === "time"
        ? { timeStyle: "short" } : { dateStyle: "full", timeStyle: "short" };
      el.textContent = new Intl.DateTimeFormat(locale, options).format(date);
      if (el.closest(".when") === null) el.textContent += ` (${zone})`;
    }
    const when = document.querySelector(".when");
    if (when && yourTime) when.append(` (${yourTime.replace("{zone}", zone)})`);
  }

  const root = document.getElementById("guest");
  if (!root) {
    localiseTimes(null);
    return;
  }
  const config = JSON.parse(document.getElementById("guest-config").textContent);
  const text = config.messages;
  localiseTimes(text.yourTime);

  function say(key, values = {}) {
    return text[key].replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
  }

  // --- the candidate address filter (signalling/candidates.py, in the browser) ---------

  function ipBytes(value) {
    let a = String(value).trim();
    if (a.startsWith("[") && a.endsWith("]")) a = a.slice(1, -1);
    a = a.split("%")[0];
    const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(a);
    if (v4) {
      const bytes = v4.slice(1).map(Number);
      return bytes.every((b) => b <= 255) ? bytes : null;
    }
    if (!a.includes(":") || !/^[0-9a-fA-F:.]+$/.test(a)) return null;
    const last = a.lastIndexOf(":");
    if (a.slice(last + 1).includes(".")) {  // ::ffff:192.0.2.1
      const tail = ipBytes(a.slice(last + 1));
      if (!tail) return null;
      a = a.slice(0, last + 1) + [(tail[0] << 8) | tail[1], (tail[2] << 8) | tail[3]]
        .map((n) => n.toString(16)).join(":");
    }
    const halves = a.split("::");
    if (halves.length > 2) return null;
    const split = (s) => (s === "" ? [] : s.split(":"));
    const head = split(halves[0]);
    const rest = halves.length === 2 ? split(halves[1]) : [];
    const missing = 8 - head.length - rest.length;
    if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
    const groups = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...rest];
    const bytes = [];
    for (const g of groups) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      const n = parseInt(g, 16);
      bytes.push(n >> 8, n & 255);
    }
    return bytes;
  }

  function parseNetworks(cidrs) {
    const networks = [];
    for (const cidr of cidrs) {
      const [address, length] = cidr.split("/");
      const bytes = ipBytes(address);
      if (bytes) networks.push({ bytes, bits: length === undefined ? bytes.length * 8 : Number(length) });
    }
    return networks;
  }

  function addressAllowed(address, networks) {
    const bytes = ipBytes(address);
    if (!bytes) return false;  // host names (mDNS .local) hide the address: never allowed
    return networks.some((net) => {
      if (net.bytes.length !== bytes.length) return false;
      for (let i = 0, bits = net.bits; i < bytes.length && bits > 0; i += 1, bits -= 8) {
        const mask = bits >= 8 ? 255 : (0xff << (8 - bits)) & 255;
        if ((bytes[i] & mask) !== (net.bytes[i] & mask)) return false;
      }
      return true;
    });
  }

  const UNSPECIFIED = new Set(["0.0.0.0", "::"]);

  /** The addresses a candidate line reveals: its connection address and its raddr. */
  function candidateAddresses(line) {
    const parts = line.replace(/^a=/, "").trim().split(/\s+/);
    if (!parts[0].startsWith("candidate:") || parts.length < 8) return null;
    const found = [parts[4]];
    const raddr = parts.indexOf("raddr");
    if (raddr > 0 && parts[raddr + 1] && !UNSPECIFIED.has(parts[raddr + 1])) found.push(parts[raddr + 1]);
    return found;
  }

  function candidateAllowed(line, networks) {
    const addresses = candidateAddresses(line);
    return addresses !== null && addresses.every((a) => addressAllowed(a, networks));
  }

  function filterSdp(sdp, networks) {
    const removed = [];
    const kept = [];
    for (const line of sdp.split("\r\n")) {
      if (line.startsWith("a=candidate:")) {
        if (!candidateAllowed(line, networks)) {
          removed.push(line);
          continue;
        }
      } else if (line.startsWith("c=IN ")) {
        const [, family, address] = line.split(" ");
        if (!UNSPECIFIED.has(address) && !addressAllowed(address, networks)) {
          kept.push(`c=IN ${family} ${family === "IP6" ? "::" : "0.0.0.0"}`);
          continue;
        }
      }
      kept.push(line);
    }
    return { sdp: kept.join("\r\n"), removed };
  }

  // --- state, and its read-only copy on window ------------------------------------------

  const status = {
    state: "check", peerId: null, sessionId: config.session_id, sessionState: null,
    end: config.end, peers: {}, contentShown: null, errors: [], removedCandidates: 0,
    sent: { offer: 0, answer: 0, candidate: 0, subscribe: 0 }, topology: "mesh", epoch: 0,
    speaker: null, publication: null,
  };
  Object.defineProperty(window, "telecentreGuest", {
    get: () => JSON.parse(JSON.stringify(status)),
  });

  const $ = (id) => document.getElementById(id);
  const ui = {
    preview: $("preview"), camera: $("camera"), microphone: $("microphone"), level: $("level"),
    checkStatus: $("check-status"), retry: $("retry-check"), join: $("join"),
    joinStatus: $("join-status"), alert: $("alert"), check: $("check"), call: $("call"),
    callStatus: $("call-status"), tiles: $("tiles"), selfView: $("self-view"), mute: $("mute"),
    cameraToggle: $("camera-toggle"), sound: $("sound"), leave: $("leave"), ended: $("ended"),
    endedTitle: $("ended-title"), endedText: $("ended-text"), contentStatus: $("content-status"),
  };

  function setState(state) {
    status.state = state;
    root.dataset.state = state;
  }

  function showAlert(message) {
    ui.alert.textContent = message;
    ui.alert.hidden = !message;
  }

  // --- the camera and microphone check --------------------------------------------------

  let localStream = null;
  let audioContext = null;
  let meterSource = null;

  function stopLocal() {
    if (localStream) localStream.getTracks().forEach((t) => t.stop());
    localStream = null;
    if (meterSource) meterSource.disconnect();
    meterSource = null;
  }

  async function fillDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    for (const [select, kind] of [[ui.camera, "videoinput"], [ui.microphone, "audioinput"]]) {
      const current = localStream && localStream.getTracks().find((t) => t.kind === kind.slice(0, 5));
      const chosen = current ? current.getSettings().deviceId : select.value;
      select.replaceChildren();
      devices.filter((d) => d.kind === kind).forEach((d, i) => {
        const option = new Option(d.label || `${say("defaultDevice")} ${i + 1}`, d.deviceId);
        option.selected = d.deviceId === chosen;
        select.append(option);
      });
      select.disabled = select.options.length === 0;
    }
  }

  function meter(stream) {
    if (!stream.getAudioTracks().length) return;
    audioContext = audioContext || new AudioContext();
    const analyser = audioContext.createAnalyser();
    analyser.fftSize = 1024;
    meterSource = audioContext.createMediaStreamSource(stream);
    meterSource.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const source = meterSource;
    const tick = () => {
      if (meterSource !== source) return;
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const s of samples) sum += s * s;
      ui.level.value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
      requestAnimationFrame(tick);
    };
    tick();
  }

  // The camera check in progress: a call waits for it (a little) so that a guest who
  // clicks "join" while the browser is still opening the camera does not answer with
  // receive-only media; a check that ends after a call was made re-offers that call.
  let checking = Promise.resolve();
  const CHECK_WAIT_MS = 5000;

  function checkSettled() {
    return Promise.race([checking, new Promise((resolve) => setTimeout(resolve, CHECK_WAIT_MS))]);
  }

  function startCheck() {
    checking = runCheck();
    return checking;
  }

  async function runCheck() {
    ui.retry.hidden = true;
    ui.checkStatus.textContent = say("checking");
    stopLocal();
    // The size and rate the deployment asks of guests (guest_video): every site
    // decodes each guest, so a browser's default 640x480 at 30 fps is not taken as is.
    const wanted = config.camera
      ? { width: { ideal: config.camera.width }, height: { ideal: config.camera.height },
          frameRate: { ideal: config.camera.fps, max: config.camera.fps } }
      : {};
    const video = ui.camera.value ? { ...wanted, deviceId: { exact: ui.camera.value } } : wanted;
    const audio = ui.microphone.value ? { deviceId: { exact: ui.microphone.value } } : true;
    try {
      localStream = await navigator.mediaDevices.getUserMedia({ video, audio });
    } catch (error) {
      localStream = null;
      const key = error.name === "NotAllowedError" ? "blocked"
        : error.name === "NotFoundError" ? "noDevice" : "deviceError";
      ui.checkStatus.textContent = say(key, { name: error.name });
      ui.retry.hidden = false;
      return;
    }
    ui.preview.srcObject = localStream;
    ui.selfView.srcObject = localStream;
    meter(localStream);
    await fillDevices();
    ui.checkStatus.textContent = say("previewReady");
    for (const [peerId, call] of calls) {
      if (call.role === "subscribe") continue;  // sends nothing
      if (call.pc.getSenders().some((sender) => sender.track)) replaceTracks(call.pc);
      else if (status.state === "joined") offerTo(peerId);  // made before the camera opened
    }
    // In an SFU session nothing was published without a camera: publish now.
    if (status.state === "joined" && status.topology === "sfu" && !calls.has(SFU)) publish();
  }

  function replaceTracks(pc) {
    for (const sender of pc.getSenders()) {
      const kind = sender.track ? sender.track.kind : null;
      const track = localStream && kind && localStream.getTracks().find((t) => t.kind === kind);
      if (track) sender.replaceTrack(track);
    }
  }

  ui.camera.addEventListener("change", startCheck);
  ui.microphone.addEventListener("change", startCheck);
  ui.retry.addEventListener("click", startCheck);
  document.addEventListener("click", () => audioContext && audioContext.resume(), { once: true });

  // --- signalling --------------------------------------------------------------------

  let ticket = null;
  let ws = null;
  let networks = parseNetworks(["127.0.0.1/32"]);
  let iceServers = [];
  let offset = 0;  // server clock minus ours, in seconds
  let nextId = 1;
  let heartbeat = null;
  let endTimer = null;
  let reconnectAttempt = 0;
  let finished = false;
  let inbox = Promise.resolve();
  // addressee -> {conn, pc, offerer, site, role, stream, contentTransceiver, content, deadline}:
  // the addressee is a member in a mesh, `sfu` or `sfu:<P>` in an SFU session; `site` is
  // the member whose media the call carries (null for our publication); `role` is
  // "mesh", "publish" or "subscribe".
  const calls = new Map();
  const CONNECT_DEADLINE_MS = 10000;
  const SFU = "sfu";
  const SFU_PREFIX = "sfu:";
  const members = new Map();  // peer_id -> PeerInfo

  const serverNow = () => Date.now() / 1000 + offset;

  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  }

  async function requestTicket() {
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    let response;
    try {
      response = await fetch(config.ticket_url, {
        method: "POST", headers: { "X-CSRF-Token": csrf }, credentials: "same-origin",
      });
    } catch (error) {
      return { error: { code: "unreachable", message: say("unreachable") } };
    }
    if (response.headers.get("Content-Type")?.startsWith("application/json")) {
      const body = await response.json();
      if (response.ok) return body;
      const key = { "guest-link-invalid": "linkInvalid", "guest-link-revoked": "linkRevoked",
                    "guest-link-outside-window": "linkClosed" }[body.error.code];
      return { error: { code: body.error.code, message: key ? say(key) : body.error.message } };
    }
    return { error: { code: response.status === 403 ? "csrf-failed" : `http-${response.status}`,
                      message: say("expired") } };
  }

  async function join() {
    ui.join.disabled = true;
    showAlert("");
    ui.joinStatus.textContent = say("connecting");
    if (audioContext) audioContext.resume();
    const answer = await requestTicket();
    if (answer.error) {
      status.errors.push(answer.error.code);
      setState("refused");
      ui.joinStatus.textContent = "";
      showAlert(answer.error.message);
      ui.join.disabled = false;
      return;
    }
    ticket = answer;
    offset = answer.server_time - Date.now() / 1000;
    setState("waiting");
    const wait = answer.joinable_at - serverNow();
    if (wait > 0) {
      ui.joinStatus.textContent = say("waitingUntil", { time: formatTime(answer.joinable_at) });
      setTimeout(connect, wait * 1000 + 500);
    } else {
      connect();
    }
  }

  function connect() {
    if (finished) return;
    setState(status.peerId ? "reconnecting" : "connecting");
    ws = new WebSocket(ticket.ws_url);
    const socket = ws;
    socket.addEventListener("open", () => send({
      type: "hello", protocol: 1, ticket: ticket.ticket, agent: "telecentre-guest/0.1", id: `c${nextId++}`,
    }));
    socket.addEventListener("message", (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      // One message at a time, in order: a candidate must not overtake its offer.
      inbox = inbox.then(() => handle(message)).catch((error) => console.error("telecentre guest:", error));
    });
    socket.addEventListener("close", () => {
      if (socket !== ws) return;
      clearInterval(heartbeat);
      if (finished || ["full", "refused", "replaced"].includes(status.state)) return;
      // A lost link is not leaving: peer connections keep their media meanwhile.
      setState("reconnecting");
      ui.callStatus.textContent = say("reconnecting");
      retryLater();
    });
  }

  function retryLater() {
    const delay = Math.min(10, 2 ** reconnectAttempt) * (0.5 + Math.random() / 2);
    reconnectAttempt += 1;
    setTimeout(reconnect, delay * 1000);
  }

  /** Back after a lost link: a fresh ticket (the session may have been extended past the
      old one's expiry, or the link revoked meanwhile), then hello and join again. */
  async function reconnect() {
    if (finished) return;
    const answer = await requestTicket();
    if (!answer.error) {
      ticket = answer;
      connect();
    } else if (answer.error.code === "unreachable") {
      retryLater();
    } else if (answer.error.code === "guest-link-outside-window") {
      finish("ended");
    } else {
      setState("refused");
      ui.callStatus.textContent = answer.error.message;
      for (const peerId of [...calls.keys()]) dropCall(peerId);
    }
  }

  async function handle(m) {
    switch (m.type) {
      case "welcome":
        reconnectAttempt = 0;
        status.peerId = m.peer_id;
        iceServers = m.ice_servers.map((s) => ({ urls: s.urls, username: s.username, credential: s.credential }));
        networks = parseNetworks(m.candidate_filter.allow);
        offset = m.server_time - Date.now() / 1000;
        clearInterval(heartbeat);
        heartbeat = setInterval(() => send({ type: "ping", t: Date.now() / 1000, id: `c${nextId++}` }),
                                m.heartbeat_interval * 1000);
        send({ type: "join", session_id: ticket.session_id, ticket: ticket.ticket, id: `c${nextId++}` });
        break;
      case "joined":
        // The session's TURN credential comes with joined (docs/protocol.md): calls use it.
        if (m.ice_servers && m.ice_servers.length) {
          iceServers = m.ice_servers.map((s) => ({ urls: s.urls, username: s.username, credential: s.credential }));
        }
        onJoined(m);
        for (const peer of m.peers) {
          members.set(peer.peer_id, peer);
          tileFor(peer);
        }
        if ((m.topology || "mesh") === "sfu") {
          if (status.topology === "sfu" && (m.epoch || 0) === status.epoch) {
            // A rejoin on the same SFU (our link came back): connections that outlived
            // the link stay, as in a mesh; only a publication that did not is made again.
            if (!healthy(SFU)) publish().catch((error) => console.error("telecentre guest:", error));
            break;
          }
          // A first joined, or one on another SFU: start afresh; the server offers each
          // publication that is up, and we publish.
          status.epoch = m.epoch || 0;
          moveToSfu();
          break;
        }
        if (status.topology === "sfu") for (const peerId of [...calls.keys()]) dropCall(peerId);
        status.topology = "mesh";
        status.epoch = m.epoch || 0;
        // The later joiner offers, to every peer it has no healthy connection with.
        await Promise.all(m.peers.filter((peer) => !healthy(peer.peer_id)).map((peer) => offerTo(peer.peer_id)));
        break;
      case "topology":
        if (m.session_id !== ticket.session_id || !(m.epoch > status.epoch)) break;
        status.epoch = m.epoch;
        // Only moves to an SFU exist (docs/protocol.md §20): from the mesh, or from a
        // Janus that died to another.
        if (m.topology === "sfu") moveToSfu();
        break;
      case "peer-joined":
        members.set(m.peer.peer_id, m.peer);
        tileFor(m.peer);
        break;
      case "peer-left":
        members.delete(m.peer_id);
        dropCall(m.peer_id);
        dropCall(SFU_PREFIX + m.peer_id);
        if (config.sites.some((site) => site.peer_id === m.peer_id)) updateTile(m.peer_id);
        else removeTile(m.peer_id);
        break;
      case "offer": await onOffer(m); break;
      case "answer": await onAnswer(m); break;
      case "candidate": await onCandidate(m); break;
      case "pong":
        offset = m.server_time - (m.t + Date.now() / 1000) / 2;
        break;
      case "session-state": onSessionState(m); break;
      case "error": onError(m); break;
      default: break;  // newer server messages are ignored
    }
  }

  function onJoined(m) {
    setState("joined");
    ui.check.hidden = true;
    ui.call.hidden = false;
    ui.selfView.srcObject = localStream;
    if (m.state) status.sessionState = m.state;
    for (const site of config.sites) tileFor(site);
    showSessionState();
    scheduleEnd(status.end);
    if (!statsTimer) statsTimer = setInterval(collectStats, 1000);
    if (!contentTimer) contentTimer = setInterval(pollContent, CONTENT_POLL_MS);
    if (!audioTimer) audioTimer = setInterval(pollAudio, AUDIO_POLL_MS);
    arrangeTiles();
  }

  function onError(m) {
    status.errors.push(m.code);
    if (m.code === "session-full") {
      setState("full");
      ui.joinStatus.textContent = "";
      showAlert(say("full"));
      ui.join.disabled = false;
      ws.close();
    } else if (m.code === "replaced") {
      setState("replaced");
      showAlert(say("replaced"));
      ui.callStatus.textContent = say("replaced");
    } else if (m.code === "not-in-session" && status.state !== "joined") {
      finish("ended");  // a join of a finished session
    } else if (m.code.startsWith("ticket-") || m.code === "auth-failed") {
      setState("refused");
      ui.joinStatus.textContent = "";
      showAlert(say("refused", { code: m.code }));
      ui.join.disabled = false;
      ws.close();
    } else {
      console.warn("telecentre guest: server error", m.code, m.message);
    }
  }

  function onSessionState(m) {
    status.sessionState = m.state;
    if (typeof m.end === "number") {
      status.end = m.end;
      scheduleEnd(m.end);
    }
    if (["ended", "cancelled", "failed"].includes(m.state)) finish(m.state);
    else showSessionState();
  }

  function showSessionState() {
    const state = status.sessionState;
    let message = "";
    if (![...calls.values()].some((call) => call.site)) message = say("waitingOthers");
    else if (state === "preparing") message = say("preparing", { time: formatTime(config.start) });
    else if (state === "live") message = say("live");
    else if (state === "ending") message = say("ending", { time: formatTime(status.end) });
    // A live region: rewriting the same words would announce them again every second.
    if (ui.callStatus.textContent !== message) ui.callStatus.textContent = message;
  }

  function scheduleEnd(end) {
    clearTimeout(endTimer);
    endTimer = setTimeout(() => finish("ended"), Math.max(0, (end - serverNow()) * 1000) + 1000);
  }

  function finish(how) {
    if (finished) return;
    finished = true;
    if (status.state === "joined" || status.state === "reconnecting") {
      send({ type: "leave", session_id: ticket.session_id });
    }
    setState(how === "left" ? "left" : "ended");
    status.sessionState = how === "left" ? status.sessionState : how;
    clearInterval(heartbeat);
    clearTimeout(endTimer);
    clearInterval(statsTimer);
    clearInterval(contentTimer);
    clearInterval(audioTimer);
    if (ws) ws.close(1000);
    for (const peerId of [...calls.keys()]) dropCall(peerId);
    stopLocal();
    ui.check.hidden = true;
    ui.call.hidden = true;
    showAlert("");
    ui.endedTitle.textContent = say(`${how}Title`);
    ui.endedText.textContent = say(how);
    ui.ended.hidden = false;
    ui.endedTitle.focus();
  }

  // --- peer connections -------------------------------------------------------------

  const newConn = () => Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => b.toString(16).padStart(2, "0")).join("");

  function healthy(peerId) {
    const call = calls.get(peerId);
    return Boolean(call) && ["new", "connecting", "connected"].includes(call.pc.connectionState);
  }

  /** The member whose media a call with `key` carries: P for `sfu:<P>`, none for `sfu`. */
  function siteOf(key) {
    if (key === SFU) return null;
    return key.startsWith(SFU_PREFIX) ? key.slice(SFU_PREFIX.length) : key;
  }

  function roleOf(key) {
    if (key === SFU) return "publish";
    return key.startsWith(SFU_PREFIX) ? "subscribe" : "mesh";
  }

  function newCall(peerId, conn, offerer) {
    const pc = new RTCPeerConnection({ iceServers });
    const site = siteOf(peerId);
    const role = roleOf(peerId);
    // The peer's camera and microphone; its content gets a stream of its own (an agent
    // sends all three in one stream).
    const call = {
      conn, pc, offerer, site, role, stream: new MediaStream(), contentTransceiver: null,
      content: null, deadline: null, trickle: null,
    };
    if (role === "publish") {
      // Our publication: camera then microphone, sending only (a guest shares no content).
      for (const kind of ["video", "audio"]) {
        for (const track of localStream ? localStream.getTracks().filter((t) => t.kind === kind) : []) {
          pc.addTransceiver(track, { direction: "sendonly", streams: [localStream] });
        }
      }
    } else if (role === "mesh") {
      // The agents' order: camera, microphone, then content (room_agents/calls.py).
      for (const kind of ["video", "audio"]) {
        const tracks = localStream ? localStream.getTracks().filter((t) => t.kind === kind) : [];
        for (const track of tracks) pc.addTrack(track, localStream);
        if (!tracks.length) pc.addTransceiver(kind, { direction: "recvonly" });
      }
      // Our offers ask for the others' content; when a peer offers, its own content
      // section makes the browser add the transceiver.
      if (offerer) call.contentTransceiver = pc.addTransceiver("video", { direction: "recvonly" });
    }
    // A subscription adds nothing: the SFU's offer makes the receivers.
    if (role !== "mesh") trickleFrom(peerId, call);
    pc.addEventListener("track", (event) => {
      if (calls.get(peerId) !== call || !site) return;
      if (isContent(call, event.transceiver)) {
        attachContent(site, call, event.receiver);
        return;
      }
      const tile = tileFor(members.get(site) || { peer_id: site, name: site });
      const video = tile.querySelector("video");
      if (!call.stream.getTracks().includes(event.track)) call.stream.addTrack(event.track);
      if (video.srcObject !== call.stream) {
        video.srcObject = call.stream;
        video.play().catch(() => { ui.sound.hidden = false; });
      }
    });
    pc.addEventListener("connectionstatechange", () => {
      if (calls.get(peerId) !== call) return;
      if (site) updateTile(site);
      if (role === "publish") status.publication = pc.connectionState;
      if (pc.connectionState !== "failed") return;
      if (role === "mesh") {
        // Only the peer whose id sorts first re-offers, so both never offer at once.
        if (members.has(peerId) && status.peerId < peerId) offerTo(peerId);
      } else {
        repairSfu(peerId, call);
      }
    });
    // A call still not connected at the deadline is made again, as the agents do
    // (room_agents/calls.py CONNECT_DEADLINE): by us if our offer was never answered
    // (the peer may never have had it), else by the peer whose id sorts first. With
    // the SFU: the publication is offered again, a subscription asked for again.
    const deadline = () => {
      if (calls.get(peerId) !== call || !["new", "connecting"].includes(pc.connectionState)) return;
      if (role !== "mesh") {
        repairSfu(peerId, call);
        return;
      }
      const unanswered = offerer && !pc.remoteDescription;
      if (members.has(peerId) && (unanswered || status.peerId < peerId)) offerTo(peerId);
    };
    call.deadline = setTimeout(deadline, CONNECT_DEADLINE_MS);
    call.rearm = () => {
      clearTimeout(call.deadline);
      call.deadline = setTimeout(deadline, CONNECT_DEADLINE_MS);
    };
    dropCall(peerId);
    calls.set(peerId, call);
    if (role === "publish") status.publication = pc.connectionState;
    return call;
  }

  /** A connection with the SFU that failed or missed its deadline: publish again, or
      ask the server for a fresh offer of P's publication (which replaces this one). */
  function repairSfu(peerId, call) {
    if (status.topology !== "sfu" || finished) return;
    if (call.role === "publish") {
      publish();
    } else if (members.has(call.site)) {
      send({ type: "subscribe", session_id: ticket.session_id, publisher: call.site, id: `c${nextId++}` });
      status.sent.subscribe += 1;
      call.rearm();  // asked again if no fresh offer comes and connects
    }
  }

  /** Trickle a connection's candidates to the SFU once its SDP went out: each one the
      candidate filter allows, then the end of candidates (docs/protocol.md §20). */
  function trickleFrom(peerId, call) {
    call.trickle = { sent: false, queue: [] };
    call.pc.addEventListener("icecandidate", (event) => {
      const c = event.candidate;
      const message = { type: "candidate", session_id: ticket.session_id, to: peerId, conn: call.conn };
      if (c && c.candidate) {
        if (!candidateAllowed(c.candidate, networks)) {
          status.removedCandidates += 1;
          return;
        }
        Object.assign(message, { candidate: c.candidate, sdp_mid: c.sdpMid, sdp_mline_index: c.sdpMLineIndex });
      } else if (c) {
        return;  // an empty candidate: the end of one section's candidates
      }
      if (call.trickle.sent) sendCandidate(peerId, call, message);
      else call.trickle.queue.push(message);
    });
  }

  function sendCandidate(peerId, call, message) {
    if (calls.get(peerId) !== call) return;
    send(message);
    status.sent.candidate += 1;
  }

  function descriptionSent(peerId, call) {
    call.trickle.sent = true;
    for (const message of call.trickle.queue.splice(0)) sendCandidate(peerId, call, message);
  }

  function dropCall(peerId) {
    const call = calls.get(peerId);
    if (!call) return;
    calls.delete(peerId);
    clearTimeout(call.deadline);
    call.pc.close();
    if (call.role === "publish") status.publication = null;
    if (!call.site) return;
    delete status.peers[call.site];
    if (call.content) {
      const tile = contentTile(call.site);
      if (tile) tile.remove();
      if (call.content.live) announceContent(call.site, false);
      layoutContent();
    }
  }

  function gathered(pc) {
    return new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") { resolve(); return; }
      const done = () => {
        if (pc.iceGatheringState !== "complete") return;
        pc.removeEventListener("icegatheringstatechange", done);
        resolve();
      };
      pc.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 5000);  // send what was gathered so far
    });
  }

  function ownSdp(pc) {
    const { sdp, removed } = filterSdp(pc.localDescription.sdp, networks);
    status.removedCandidates += removed.length;
    return sdp;
  }

  function theirSdp(sdp) {
    return filterSdp(sdp, networks).sdp;
  }

  async function offerTo(peerId) {
    await checkSettled();
    const call = newCall(peerId, newConn(), true);
    await call.pc.setLocalDescription(await call.pc.createOffer());
    // Agents read no `candidate`: they get complete SDPs. The SFU gets ours trickled.
    if (!call.trickle) await gathered(call.pc);
    if (calls.get(peerId) !== call) return;
    send({ type: "offer", session_id: ticket.session_id, to: peerId, conn: call.conn, sdp: ownSdp(call.pc) });
    status.sent.offer += 1;
    if (call.trickle) descriptionSent(peerId, call);
  }

  /** Close every connection of the session and publish to the SFU (a joined of an SFU
      session, or a move to a higher epoch). */
  function moveToSfu() {
    status.topology = "sfu";
    for (const peerId of [...calls.keys()]) dropCall(peerId);
    for (const peerId of members.keys()) updateTile(peerId);
    publish().catch((error) => console.error("telecentre guest:", error));
  }

  /** Our camera and microphone to `sfu`; nothing while the browser has neither (the
      check publishes once they open). */
  async function publish() {
    await checkSettled();
    if (status.topology !== "sfu" || finished || status.state !== "joined") return;
    if (!localStream || !localStream.getTracks().length) return;
    await offerTo(SFU);
  }

  async function onOffer(m) {
    if (!m.from) return;
    const subscription = m.from.startsWith(SFU_PREFIX);
    // In an SFU session only the SFU offers; a member's offer is from the mesh it left.
    if (subscription !== (status.topology === "sfu") || m.from === SFU) return;
    const site = siteOf(m.from);
    if (!members.has(site)) members.set(site, { peer_id: site, name: site });
    if (!subscription) await checkSettled();  // a subscription sends nothing: no camera to wait for
    const call = newCall(m.from, m.conn, false);  // a new offer replaces the older connection
    await call.pc.setRemoteDescription({ type: "offer", sdp: theirSdp(m.sdp) });
    await call.pc.setLocalDescription(await call.pc.createAnswer());
    if (!call.trickle) await gathered(call.pc);
    if (calls.get(m.from) !== call) return;
    send({ type: "answer", session_id: ticket.session_id, to: m.from, conn: call.conn, sdp: ownSdp(call.pc) });
    status.sent.answer += 1;
    if (call.trickle) descriptionSent(m.from, call);
  }

  async function onAnswer(m) {
    const call = calls.get(m.from);
    if (!call || call.conn !== m.conn || !call.offerer) return;  // an answer to a replaced offer
    if (call.pc.signalingState !== "have-local-offer") return;
    await call.pc.setRemoteDescription({ type: "answer", sdp: theirSdp(m.sdp) });
  }

  async function onCandidate(m) {
    const call = calls.get(m.from);
    if (!call || call.conn !== m.conn || !m.candidate) return;
    if (!candidateAllowed(m.candidate, networks)) return;
    await call.pc.addIceCandidate({
      candidate: m.candidate.replace(/^a=/, ""), sdpMid: m.sdp_mid, sdpMLineIndex: m.sdp_mline_index,
    });
  }

  // --- tiles and figures ----------------------------------------------------------------

  function tileFor(peer) {
    const id = `tile-${CSS.escape(peer.peer_id)}`;
    let tile = ui.tiles.querySelector(`[data-peer="${CSS.escape(peer.peer_id)}"]`);
    if (!tile) {
      tile = document.createElement("li");
      tile.className = "tile";
      tile.dataset.peer = peer.peer_id;
      tile.id = id;
      const video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      const name = document.createElement("p");
      name.className = "tile-name";
      const live = document.createElement("p");
      live.className = "live-indicator";
      live.innerHTML = '<span class="dot" aria-hidden="true"></span><span class="live-text"></span>';
      tile.append(video, name, live);
      ui.tiles.append(tile);
      arrangeTiles();
    }
    const label = peer.centre ? `${peer.name} · ${peer.centre}` : peer.name;
    tile.querySelector(".tile-name").textContent = label;
    tile.querySelector(".tile-name").title = label;  // cut short in a narrow tile
    tile.querySelector("video").setAttribute("aria-label", label);
    updateTile(peer.peer_id);
    showSessionState();
    return tile;
  }

  function removeTile(peerId) {
    const tile = ui.tiles.querySelector(`[data-peer="${CSS.escape(peerId)}"]`);
    if (tile) tile.remove();
    arrangeTiles();
    showSessionState();
  }

  // --- layout and speaker (the rules: guest_layout.js) ------------------------------------

  const layout = window.telecentreLayout;
  const TILE_GAP = 16;        // px, the list's gap (guest.css)
  const STAGE_RESERVE = 200;  // px of the window kept for the call's status and controls
  const STAGE_MIN = 240;
  const AUDIO_POLL_MS = 250;
  let audioTimer = null;
  let audioPolling = false;
  let speakers = { speaker: null, sites: {} };

  /** What a tile adds around its picture (padding, border, its name and state). */
  function tileChrome(tile) {
    const video = tile && tile.querySelector("video");
    if (!video || !video.offsetWidth) return { extraW: 18, extraH: 64 };
    return { extraW: tile.offsetWidth - video.offsetWidth, extraH: tile.offsetHeight - video.offsetHeight };
  }

  /** Size the tiles by the layout rules for the space the call has now. */
  function arrangeTiles() {
    if (ui.call.hidden) return;
    const width = ui.call.clientWidth;
    const height = Math.max(STAGE_MIN, window.innerHeight - STAGE_RESERVE);
    const sites = [...ui.tiles.querySelectorAll("li[data-peer]")];
    const style = ui.tiles.style;
    if (ui.tiles.dataset.layout === "content") {
      const strip = [...ui.tiles.children].filter((tile) => !tile.hidden && !tile.classList.contains("large"));
      const { extraW, extraH } = tileChrome(strip.find((tile) => tile.dataset.peer));
      const plan = layout.stripPlan(strip.length, width, height, { gap: TILE_GAP, extraW, extraH });
      style.setProperty("--tile-width", `${plan.tileWidth + extraW}px`);
      style.setProperty("--content-height", `${Math.max(STAGE_MIN / 2, plan.contentHeight - extraH)}px`);
      style.setProperty("--row-width", `${width}px`);
      ui.tiles.dataset.cols = String(strip.length);
      ui.tiles.dataset.rows = "1";
      return;
    }
    const { extraW, extraH } = tileChrome(sites[0]);
    const plan = layout.gridPlan(sites.length, width, height, { gap: TILE_GAP, extraW, extraH });
    const tileWidth = plan.tileWidth + extraW;
    style.setProperty("--tile-width", `${tileWidth}px`);
    // Exactly `cols` tiles to a row; the last row, if shorter, is centred.
    style.setProperty("--row-width", `${plan.cols * tileWidth + Math.max(0, plan.cols - 1) * TILE_GAP}px`);
    ui.tiles.dataset.cols = String(plan.cols);
    ui.tiles.dataset.rows = String(plan.rows);
  }

  window.addEventListener("resize", arrangeTiles);

  /** Each site's audio level since the last poll (RMS of full scale, from the received
      audio's energy), fed to the speaker rule; the speaker's tile is marked. */
  async function pollAudio() {
    if (audioPolling) return;
    audioPolling = true;
    try {
      const levels = {};
      for (const [key, call] of calls) {
        if (!call.site || call.pc.connectionState !== "connected") continue;
        const receiver = call.pc.getReceivers().find((r) => r.track && r.track.kind === "audio");
        if (!receiver) continue;
        let report;
        try { report = await receiver.getStats(); } catch { continue; }
        let now = null;
        report.forEach((s) => {
          if (s.type === "inbound-rtp" && s.kind === "audio" && typeof s.totalAudioEnergy === "number") {
            now = { energy: s.totalAudioEnergy, duration: s.totalSamplesDuration || 0 };
          }
        });
        if (!now || calls.get(key) !== call) continue;
        const before = call.audio;
        call.audio = now;
        const heard = before ? now.duration - before.duration : 0;
        levels[call.site] = heard > 0 ? Math.sqrt(Math.max(0, now.energy - before.energy) / heard) : 0;
      }
      speakers = layout.speakerStep(speakers, levels, performance.now());
      status.speaker = speakers.speaker;
      for (const tile of ui.tiles.querySelectorAll("li[data-peer]")) {
        const speaking = String(tile.dataset.peer === speakers.speaker);
        if (tile.dataset.speaking !== speaking) tile.dataset.speaking = speaking;
      }
    } finally {
      audioPolling = false;
    }
  }

  function updateTile(peerId) {
    const tile = ui.tiles.querySelector(`[data-peer="${CSS.escape(peerId)}"]`);
    if (!tile) return;
    const figures = status.peers[peerId];
    let state = "absent";
    if (figures && figures.live) state = "live";
    else if (figures && figures.framesDecoded > 0) state = "no-picture";
    else if (members.has(peerId)) state = "connecting";
    tile.dataset.live = state;
    tile.querySelector(".live-text").textContent = say({
      live: "tileLive", "no-picture": "tileNoPicture", connecting: "tileConnecting", absent: "tileAbsent",
    }[state]);
  }

  let statsTimer = null;

  async function collectStats() {
    for (const [key, call] of calls) {
      const peerId = call.site;  // the figures are the member's, whichever way they come
      if (!peerId) continue;
      const report = await call.pc.getStats();
      const previous = status.peers[peerId] || { framesDecoded: 0, stalledSince: Date.now() };
      const figures = {
        name: (members.get(peerId) || {}).name || peerId,
        centre: (members.get(peerId) || {}).centre || null,
        connection: call.pc.connectionState,
        framesDecoded: 0, framesReceived: 0, framesPerSecond: 0, frameWidth: 0, frameHeight: 0,
        audioLevel: 0, live: false, stalledSince: previous.stalledSince,
      };
      // The camera's figures: content frames are counted apart (pollContent).
      const content = call.content ? call.content.receiver
        : call.contentTransceiver && call.contentTransceiver.receiver;
      report.forEach((s) => {
        if (s.type !== "inbound-rtp") return;
        if (s.kind === "video" && content && s.trackIdentifier === content.track.id) return;
        if (s.kind === "video") {
          figures.framesDecoded += s.framesDecoded || 0;
          figures.framesReceived += s.framesReceived || 0;
          figures.framesPerSecond = Math.max(figures.framesPerSecond, s.framesPerSecond || 0);
          figures.frameWidth = s.frameWidth || figures.frameWidth;
          figures.frameHeight = s.frameHeight || figures.frameHeight;
        } else if (s.kind === "audio") {
          figures.audioLevel = s.audioLevel || 0;
        }
      });
      if (figures.framesDecoded > previous.framesDecoded) figures.stalledSince = Date.now();
      // Live: connected, and a picture decoded within the last 3 seconds.
      figures.live = figures.connection === "connected" && figures.framesDecoded > 0
        && Date.now() - figures.stalledSince < 3000;
      figures.content = contentFigures(call);
      if (calls.get(key) === call) {
        status.peers[peerId] = figures;
        updateTile(peerId);
      }
    }
    showSessionState();
  }

  // --- content share -------------------------------------------------------------------

  const CONTENT_PREFIX = "content-";
  const CONTENT_STALE_MS = 1500;  // the room screens drop content 1.5 s after its last frame
  const CONTENT_POLL_MS = 250;
  let contentTimer = null;

  /** The media sections of an SDP: [{kind, mid, trackId}]. */
  function sections(sdp) {
    return sdp.split(/\r\n(?=m=)/).slice(1).map((text) => {
      const lines = text.split("\r\n");
      const mid = lines.find((l) => l.startsWith("a=mid:"));
      const msid = lines.find((l) => l.startsWith("a=msid:"));
      return {
        kind: lines[0].slice(2).split(" ")[0],
        mid: mid ? mid.slice(6).trim() : null,
        trackId: msid ? (msid.slice(7).trim().split(/\s+/)[1] || "") : "",
      };
    });
  }

  /** Is what arrives on this transceiver a peer's content? Ours for content when we
      offered; else the section announced as content, or the second video section. */
  function isContent(call, transceiver) {
    if (call.contentTransceiver) return transceiver === call.contentTransceiver;
    const remote = call.pc.remoteDescription;
    if (!remote || transceiver.mid === null) return false;
    const all = sections(remote.sdp);
    const own = all.find((s) => s.mid === transceiver.mid);
    if (own && own.trackId.startsWith(CONTENT_PREFIX)) return true;
    const videos = all.filter((s) => s.kind === "video");
    return videos.length >= 2 && videos[1].mid === transceiver.mid;
  }

  function contentTile(peerId) {
    return ui.tiles.querySelector(`[data-content-peer="${CSS.escape(peerId)}"]`);
  }

  function siteName(peerId) {
    return (members.get(peerId) || {}).name || peerId;
  }

  function attachContent(peerId, call, receiver) {
    const track = receiver.track;
    call.content = {
      receiver, track, framesDecoded: 0, framesPerSecond: 0, frameWidth: 0, frameHeight: 0,
      lastFrameAt: 0, live: false,
    };
    for (const event of ["mute", "unmute", "ended"]) {
      track.addEventListener(event, () => { if (call.content && call.content.track === track && [...calls.values()].includes(call)) refreshContent(peerId, call); });
    }
    let tile = contentTile(peerId);
    if (!tile) {
      tile = document.createElement("li");
      tile.className = "tile content";
      tile.dataset.contentPeer = peerId;
      tile.hidden = true;
      const video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      video.muted = true;
      const name = document.createElement("p");
      name.className = "tile-name";
      tile.append(video, name);
      ui.tiles.prepend(tile);
    }
    const label = say("sharing", { site: siteName(peerId) });
    tile.querySelector(".tile-name").textContent = label;
    const video = tile.querySelector("video");
    video.setAttribute("aria-label", label);
    video.srcObject = new MediaStream([track]);
    video.play().catch(() => {});
  }

  function contentFigures(call) {
    const c = call && call.content;
    if (!c) {
      return { received: false, framesDecoded: 0, framesPerSecond: 0, frameWidth: 0, frameHeight: 0, live: false };
    }
    return {
      received: true, framesDecoded: c.framesDecoded, framesPerSecond: c.framesPerSecond,
      frameWidth: c.frameWidth, frameHeight: c.frameHeight, live: c.live,
    };
  }

  /** Content frames, read often: the grid must come back soon after the last one. */
  async function pollContent() {
    for (const [key, call] of calls) {
      const peerId = call.site;
      const c = call.content;
      if (!c) continue;
      let report;
      try { report = await c.receiver.getStats(); } catch { continue; }
      let decoded = 0;
      report.forEach((s) => {
        if (s.type !== "inbound-rtp" || s.kind !== "video") return;
        decoded += s.framesDecoded || 0;
        c.framesPerSecond = s.framesPerSecond || 0;
        c.frameWidth = s.frameWidth || c.frameWidth;
        c.frameHeight = s.frameHeight || c.frameHeight;
      });
      if (decoded > c.framesDecoded) c.lastFrameAt = performance.now();
      c.framesDecoded = decoded;
      if (calls.get(key) === call) refreshContent(peerId, call);
    }
  }

  function refreshContent(peerId, call) {
    const c = call.content;
    const live = c.track.readyState === "live" && !c.track.muted && c.framesDecoded > 0
      && performance.now() - c.lastFrameAt < CONTENT_STALE_MS;
    if (status.peers[peerId]) status.peers[peerId].content = contentFigures(call);
    if (live === c.live) return;
    c.live = live;
    if (status.peers[peerId]) status.peers[peerId].content = contentFigures(call);
    announceContent(peerId, live);
    layoutContent();
  }

  function announceContent(peerId, on) {
    ui.contentStatus.textContent = say(on ? "sharing" : "sharingStopped", { site: siteName(peerId) });
  }

  /** Content large over a strip of the sites, or the grid when nobody shares. */
  function layoutContent() {
    const sharing = [...calls.values()].filter((call) => call.site && call.content && call.content.live)
      .map((call) => call.site)
      .sort((a, b) => siteName(a).localeCompare(siteName(b)) || (a < b ? -1 : a > b ? 1 : 0));
    const large = sharing[0] || null;
    for (const tile of ui.tiles.querySelectorAll("[data-content-peer]")) {
      const peerId = tile.dataset.contentPeer;
      const shown = sharing.includes(peerId);
      tile.hidden = !shown;
      tile.classList.toggle("large", peerId === large);
      // The large one first; another site's content beside that site in the strip.
      if (peerId === large) {
        if (ui.tiles.firstElementChild !== tile) ui.tiles.prepend(tile);
      } else if (shown) {
        const site = ui.tiles.querySelector(`[data-peer="${CSS.escape(peerId)}"]`);
        if (site && site.nextElementSibling !== tile) site.after(tile);
      }
    }
    ui.tiles.dataset.layout = large ? "content" : "grid";
    status.contentShown = large;
    arrangeTiles();
  }

  // --- the controls ---------------------------------------------------------------------

  function toggle(button, kind, onKey, offKey) {
    const off = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(off));
    button.textContent = say(off ? offKey : onKey);
    if (localStream) localStream.getTracks().filter((t) => t.kind === kind).forEach((t) => { t.enabled = !off; });
  }

  ui.join.addEventListener("click", join);
  ui.mute.addEventListener("click", () => toggle(ui.mute, "audio", "mute", "unmute"));
  ui.cameraToggle.addEventListener("click", () => toggle(ui.cameraToggle, "video", "cameraOff", "cameraOn"));
  ui.leave.addEventListener("click", () => finish("left"));
  ui.sound.addEventListener("click", () => {
    ui.tiles.querySelectorAll("video:not([muted])").forEach((v) => v.play().catch(() => {}));
    ui.sound.hidden = true;
  });
  window.addEventListener("pagehide", () => {
    if (!finished && status.state === "joined") send({ type: "leave", session_id: ticket.session_id });
  });

  startCheck();
})();
