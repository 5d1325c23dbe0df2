/* telecentre guest page: a camera and microphone check, then the browser joins the
   session as a peer of the signalling protocol (docs/protocol.md), like a room agent.

   Rules it follows (the room agent's, room_agents/calls.py):
   - one RTCPeerConnection per remote peer, with exactly the ICE servers of the
     welcome (an empty list by default);
   - the later joiner offers: after `joined` it offers to every peer listed; on
     `peer-joined` it waits for the newcomer's offer; an offer replaces the older
     connection with that peer; an answer for another `conn` is ignored;
   - it sends complete SDPs (it does not trickle: room agents read no `candidate`
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

   window.telecentreGuest is a read-only copy of its state, for people and tests:
   {state, peerId, sessionId, sessionState, end, peers: {peer_id: {name, centre,
   connection, framesDecoded, framesReceived, framesPerSecond, frameWidth,
   frameHeight, live, content: {received, framesDecoded, framesPerSecond,
   frameWidth, frameHeight, live}}}, contentShown: peer_id | null, errors: [codes],
   removedCandidates, sent: {offer, answer}}. A peer's figures above `content` are its
   camera's; `content.received` says a content track arrived from it.
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
    sent: { offer: 0, answer: 0 },
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

  async function startCheck() {
    ui.retry.hidden = true;
    ui.checkStatus.textContent = say("checking");
    stopLocal();
    const video = ui.camera.value ? { deviceId: { exact: ui.camera.value } } : true;
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
    for (const call of calls.values()) replaceTracks(call.pc);
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
  const calls = new Map();    // peer_id -> {conn, pc, offerer, stream, contentTransceiver, content}
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
        // The later joiner offers, to every peer it has no healthy connection with.
        await Promise.all(m.peers.filter((peer) => !healthy(peer.peer_id)).map((peer) => offerTo(peer.peer_id)));
        break;
      case "peer-joined":
        members.set(m.peer.peer_id, m.peer);
        tileFor(m.peer);
        break;
      case "peer-left":
        members.delete(m.peer_id);
        dropCall(m.peer_id);
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
    if (!calls.size) message = say("waitingOthers");
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

  function newCall(peerId, conn, offerer) {
    const pc = new RTCPeerConnection({ iceServers });
    // The peer's camera and microphone; its content gets a stream of its own (an agent
    // sends all three in one stream).
    const call = { conn, pc, offerer, stream: new MediaStream(), contentTransceiver: null, content: null };
    // The agents' order: camera, microphone, then content (room_agents/calls.py).
    for (const kind of ["video", "audio"]) {
      const tracks = localStream ? localStream.getTracks().filter((t) => t.kind === kind) : [];
      for (const track of tracks) pc.addTrack(track, localStream);
      if (!tracks.length) pc.addTransceiver(kind, { direction: "recvonly" });
    }
    // Our offers ask for the others' content; when a peer offers, its own content
    // section makes the browser add the transceiver.
    if (offerer) call.contentTransceiver = pc.addTransceiver("video", { direction: "recvonly" });
    pc.addEventListener("track", (event) => {
      if (calls.get(peerId) !== call) return;
      if (isContent(call, event.transceiver)) {
        attachContent(peerId, call, event.receiver);
        return;
      }
      const tile = tileFor(members.get(peerId) || { peer_id: peerId, name: peerId });
      const video = tile.querySelector("video");
      if (!call.stream.getTracks().includes(event.track)) call.stream.addTrack(event.track);
      if (video.srcObject !== call.stream) {
        video.srcObject = call.stream;
        video.play().catch(() => { ui.sound.hidden = false; });
      }
    });
    pc.addEventListener("connectionstatechange", () => {
      if (calls.get(peerId) !== call) return;
      updateTile(peerId);
      // Only the peer whose id sorts first re-offers, so both never offer at once.
      if (pc.connectionState === "failed" && members.has(peerId) && status.peerId < peerId) {
        offerTo(peerId);
      }
    });
    dropCall(peerId);
    calls.set(peerId, call);
    return call;
  }

  function dropCall(peerId) {
    const call = calls.get(peerId);
    if (!call) return;
    calls.delete(peerId);
    call.pc.close();
    delete status.peers[peerId];
    if (call.content) {
      const tile = contentTile(peerId);
      if (tile) tile.remove();
      if (call.content.live) announceContent(peerId, false);
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
    const call = newCall(peerId, newConn(), true);
    await call.pc.setLocalDescription(await call.pc.createOffer());
    await gathered(call.pc);
    if (calls.get(peerId) !== call) return;
    send({ type: "offer", session_id: ticket.session_id, to: peerId, conn: call.conn, sdp: ownSdp(call.pc) });
    status.sent.offer += 1;
  }

  async function onOffer(m) {
    if (!m.from) return;
    if (!members.has(m.from)) members.set(m.from, { peer_id: m.from, name: m.from });
    const call = newCall(m.from, m.conn, false);  // a new offer replaces the older connection
    await call.pc.setRemoteDescription({ type: "offer", sdp: theirSdp(m.sdp) });
    await call.pc.setLocalDescription(await call.pc.createAnswer());
    await gathered(call.pc);
    if (calls.get(m.from) !== call) return;
    send({ type: "answer", session_id: ticket.session_id, to: m.from, conn: call.conn, sdp: ownSdp(call.pc) });
    status.sent.answer += 1;
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
      ui.tiles.insertBefore(tile, $("self-tile"));
    }
    const label = peer.centre ? `${peer.name} · ${peer.centre}` : peer.name;
    tile.querySelector(".tile-name").textContent = label;
    tile.querySelector("video").setAttribute("aria-label", label);
    updateTile(peer.peer_id);
    showSessionState();
    return tile;
  }

  function removeTile(peerId) {
    const tile = ui.tiles.querySelector(`[data-peer="${CSS.escape(peerId)}"]`);
    if (tile) tile.remove();
    showSessionState();
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
    for (const [peerId, call] of calls) {
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
      if (calls.get(peerId) === call) {
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
      track.addEventListener(event, () => { if (calls.get(peerId) === call) refreshContent(peerId, call); });
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
    for (const [peerId, call] of calls) {
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
      if (calls.get(peerId) === call) refreshContent(peerId, call);
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
    const sharing = [...calls].filter(([, call]) => call.content && call.content.live)
      .map(([peerId]) => peerId)
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
