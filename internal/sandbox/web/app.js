// The sandbox page: a pretend phone on the left, the Matrix user's view on
// the right. Both panes long-poll the sandbox's JSON API: each request
// carries the last version seen and returns when something changed (or after
// a while with the same state). Everything is rendered with DOM calls and
// textContent, so message text is never interpreted as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  info: null,
  phone: "",
  phoneVersion: 0,
  phoneAbort: null,
  phoneFile: null,
  matrixVersion: 0,
  rooms: [],
  room: "",
  // roomChosen is set when the user picked a room by hand; until then the
  // Matrix pane follows the phone: it shows the portal of the phone in use.
  roomChosen: false,
  matrixFile: null,
};

// api calls the sandbox's JSON API and throws an Error with the server's
// message when the request fails.
async function api(path, options = {}) {
  const resp = await fetch(path, options);
  let body = null;
  try {
    body = await resp.json();
  } catch (e) {
    // A proxy or a dying server may answer without JSON.
  }
  if (!resp.ok) {
    throw new Error((body && body.error) || `${resp.status} ${resp.statusText}`);
  }
  return body;
}

function postJSON(path, value) {
  return api(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(value),
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function showError(id, err) {
  const el = $(id);
  if (err) {
    el.textContent = err.message || String(err);
    el.hidden = false;
  } else {
    el.hidden = true;
  }
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child) node.append(child);
  }
  return node;
}

// prettyPhone formats a few common E.164 shapes for reading; others stay as
// they are.
function prettyPhone(e164) {
  if ((e164 || "").startsWith("whatsapp:")) return "WhatsApp " + prettyPhone(e164.slice("whatsapp:".length));
  let m = /^\+1(\d{3})(\d{3})(\d{4})$/.exec(e164 || "");
  if (m) return `+1 ${m[1]} ${m[2]} ${m[3]}`;
  m = /^\+44(\d{4})(\d{6})$/.exec(e164 || "");
  if (m) return `+44 ${m[1]} ${m[2]}`;
  return e164;
}

function clock(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// keepScroll re-renders a log and keeps it scrolled to the bottom if it was
// there, so new messages show up without stealing a reader's place.
function keepScroll(log, render) {
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  render();
  if (atBottom) log.scrollTop = log.scrollHeight;
}

// --- Phone -----------------------------------------------------------------

function normalizePhone(s) {
  const trimmed = s.trim();
  if (trimmed.startsWith("whatsapp:")) return "whatsapp:" + normalizePhone(trimmed.slice("whatsapp:".length));
  const cleaned = s.replace(/[\s\-().\u00a0]/g, "");
  if (/^\d{10}$/.test(cleaned)) return "+1" + cleaned;
  return cleaned;
}

function usePhone(phone) {
  if (!phone || phone === state.phone) return;
  if (!/^(whatsapp:)?\+[1-9]\d{6,14}$/.test(phone)) {
    showError("phone-error", new Error(`${phone} is not a phone number: use the international form, like +1 415 555 0101`));
    return;
  }
  if (phone === state.info.twilioNumber) {
    showError("phone-error", new Error("That is your own Twilio number; pick another phone to act as."));
    return;
  }
  showError("phone-error", null);
  state.phone = phone;
  state.phoneVersion = 0;
  state.roomChosen = false;
  $("phone-number").value = phone.startsWith("whatsapp:") ? "whatsapp:" + prettyPhone(phone.slice("whatsapp:".length)) : prettyPhone(phone);
  history.replaceState(null, "", "#" + encodeURIComponent(phone));
  $("phone-log").replaceChildren();
  if (state.phoneAbort) state.phoneAbort.abort(); // the loop starts over for the new phone
  renderRooms();
}

async function phoneLoop() {
  for (;;) {
    const phone = state.phone;
    state.phoneAbort = new AbortController();
    try {
      const st = await api(
        `/api/phone?number=${encodeURIComponent(phone)}&since=${state.phoneVersion}`,
        { signal: state.phoneAbort.signal },
      );
      if (phone !== state.phone) continue;
      state.phoneVersion = st.version;
      renderPhone(st);
    } catch (err) {
      if (err.name === "AbortError") continue;
      showError("phone-error", err);
      await sleep(1500);
    }
  }
}

const statusWords = {
  received: "received",
  queued: "queued",
  accepted: "accepted",
  sent: "sent",
  delivered: "delivered",
  undelivered: "undelivered",
  failed: "failed",
};

function renderPhone(st) {
  $("phone-to").textContent = prettyPhone(st.twilioNumber);
  $("phone-hold").checked = st.held;

  const chips = $("phone-chips");
  chips.replaceChildren(
    ...st.phones.map((p) => {
      const b = el("button", { type: "button", "data-phone": p, "aria-pressed": String(p === state.phone), text: prettyPhone(p) });
      b.addEventListener("click", () => usePhone(p));
      return b;
    }),
  );
  $("phone-list").replaceChildren(...st.phones.map((p) => el("option", { value: p })));

  const select = $("phone-behavior");
  if (select.options.length !== st.behaviors.length) {
    select.replaceChildren(...st.behaviors.map((b) => el("option", { value: b.id, text: b.label })));
  }
  select.value = st.behavior;
  const note = $("phone-behavior-note");
  const notes = {
    unreachable: "Texts to this phone are sent, then reported undelivered: Twilio's status callbacks tell the bridge, which marks the Matrix message failed.",
    unsubscribed: "This phone replied STOP: Twilio refuses to create texts to it (error 21610), so they never show up here. The Matrix side shows the failure.",
    failing: "The carrier fails every text to this phone (error 30008).",
  };
  note.textContent = notes[st.behavior] || "";
  note.hidden = !notes[st.behavior];

  const log = $("phone-log");
  keepScroll(log, () => {
    if (st.messages.length === 0) {
      log.replaceChildren(el("li", { class: "empty", text: `No texts between ${prettyPhone(st.phone)} and ${prettyPhone(st.twilioNumber)} yet. Say hello!` }));
      return;
    }
    log.replaceChildren(...st.messages.map(phoneMessage));
  });
}

function phoneMessage(m) {
  const failed = m.status === "failed" || m.status === "undelivered";
  const li = el("li", {
    class: `msg ${m.fromPhone ? "from-phone" : "to-phone"}${failed ? " not-received" : ""}`,
    "data-sid": m.sid,
    "data-status": m.status,
  });
  const bubble = el("div", { class: "bubble" });
  for (const media of m.media || []) {
    if (media.contentType.startsWith("image/")) {
      bubble.append(el("img", { src: media.url, alt: "attached image", loading: "lazy" }));
    } else {
      bubble.append(el("a", { href: media.url, text: `attachment (${media.contentType})` }));
    }
  }
  if (m.group && m.group.length) {
    const who = m.author ? `${prettyPhone(m.author)}, to the group with ` : "Group with ";
    bubble.append(el("p", { class: "group-label", text: who + m.group.map(prettyPhone).join(", ") }));
  }
  if (m.body) bubble.append(el("p", { class: "body", text: m.body }));
  li.append(bubble);

  const meta = el("div", { class: "meta" });
  meta.append(el("time", { datetime: m.time, text: clock(new Date(m.time)) }));
  if (m.fromPhone) {
    meta.append(el("span", { class: "status", "data-status": "received", text: "Twilio received it" }));
    if (m.webhook) {
      const ok = /HTTP 2\d\d/.test(m.webhook);
      meta.append(el("span", { class: ok ? "webhook" : "webhook problem", text: m.webhook }));
    }
  } else {
    meta.append(el("span", { class: "status", "data-status": m.status, text: statusWords[m.status] || m.status }));
    if (m.trail && m.trail.length > 1) {
      meta.append(el("span", { class: "trail", text: m.trail.join(" → ") }));
    }
    if (m.errorCode) {
      meta.append(el("span", { class: "problem", text: `error ${m.errorCode}${m.error ? ": " + m.error : ""}` }));
    }
  }
  for (const e of m.mediaErrors || []) {
    meta.append(el("span", { class: "problem", text: "media: " + e }));
  }
  li.append(meta);
  return li;
}

async function sendFromPhone(event) {
  event.preventDefault();
  const text = $("phone-text");
  if (!text.value.trim() && !state.phoneFile) return;
  const form = new FormData();
  form.append("from", state.phone);
  form.append("body", text.value);
  const group = $("phone-group").value.trim();
  if (group) form.append("group", group);
  if (state.phoneFile) form.append("media", state.phoneFile, state.phoneFile.name);
  const button = $("phone-send");
  button.disabled = true;
  try {
    await api("/api/phone/send", { method: "POST", body: form });
    text.value = "";
    setAttachment("phone", null);
    showError("phone-error", null);
  } catch (err) {
    showError("phone-error", err);
  } finally {
    button.disabled = false;
    text.focus();
  }
}

// --- Matrix ----------------------------------------------------------------

async function matrixLoop() {
  for (;;) {
    try {
      const st = await api(`/api/matrix?since=${state.matrixVersion}`);
      state.matrixVersion = st.version;
      state.rooms = st.rooms;
      const sync = $("matrix-sync");
      sync.textContent = st.syncError ? "Matrix sync trouble: " + st.syncError : "";
      sync.hidden = !st.syncError;
      renderRooms();
    } catch (err) {
      showError("matrix-error", err);
      await sleep(1500);
    }
  }
}

// pickRoom chooses the room to show: the user's choice, else the portal of
// the phone in use, else the most recently active room.
function pickRoom() {
  const exists = (id) => state.rooms.some((r) => r.id === id);
  if (state.roomChosen && exists(state.room)) return state.room;
  const portal = state.rooms.find((r) => r.kind === "portal" && r.phone === state.phone);
  if (portal) return portal.id;
  if (exists(state.room)) return state.room;
  return state.rooms.length ? state.rooms[0].id : "";
}

const kindLabels = { portal: "SMS", group: "group", management: "bot", other: "" };

function renderRooms() {
  if (!state.info || !state.info.matrixEnabled) return;
  const previous = state.room;
  state.room = pickRoom();
  const nav = $("matrix-rooms");
  nav.replaceChildren(
    ...state.rooms.map((r) => {
      const b = el("button", { type: "button", "data-room": r.id, "data-kind": r.kind, "aria-current": String(r.id === state.room) });
      b.append(r.kind === "portal" ? prettyPhone(r.phone) : r.name);
      if (kindLabels[r.kind]) b.append(el("span", { class: "kind", text: kindLabels[r.kind] }));
      b.addEventListener("click", () => {
        state.room = r.id;
        state.roomChosen = true;
        renderRooms();
      });
      return b;
    }),
  );
  $("matrix-send").disabled = !state.room;

  const room = state.rooms.find((r) => r.id === state.room);
  const log = $("matrix-log");
  if (previous !== state.room) log.replaceChildren();
  keepScroll(log, () => {
    if (!room) {
      log.replaceChildren(el("li", { class: "empty", text: "No rooms yet. Text your Twilio number from the phone: the bridge opens a room for that phone." }));
      return;
    }
    if (room.messages.length === 0) {
      log.replaceChildren(el("li", { class: "empty", text: "No messages in this room yet." }));
      return;
    }
    log.replaceChildren(...room.messages.map(matrixMessage));
  });
  if (previous !== state.room) log.scrollTop = log.scrollHeight;
}

function matrixMessage(m) {
  const classes = ["msg"];
  if (m.mine) classes.push("mine");
  if (m.type === "m.notice") classes.push("notice");
  if (m.redacted) classes.push("redacted");
  const li = el("li", {
    class: classes.join(" "),
    "data-event-id": m.id,
    "data-status": m.status ? m.status.state : null,
  });
  if (!m.mine) li.append(el("div", { class: "sender", text: m.senderName }));
  const bubble = el("div", { class: "bubble" });
  if (m.redacted) {
    bubble.append(el("p", { text: "(message deleted)" }));
  } else {
    if (m.mediaUrl) {
      if ((m.mimeType || "").startsWith("image/") || m.type === "m.image") {
        bubble.append(el("img", { src: m.mediaUrl, alt: m.body || "image", loading: "lazy" }));
      } else {
        bubble.append(el("a", { href: m.mediaUrl, text: m.body || "attachment" }));
      }
    }
    if (m.body && !(m.mediaUrl && m.type !== "m.text")) {
      bubble.append(el("p", { class: "body", text: m.body }));
    }
  }
  li.append(bubble);
  const meta = el("div", { class: "meta" });
  meta.append(el("time", { text: clock(new Date(m.ts)) }));
  if (m.edited) meta.append(el("span", { text: "edited" }));
  if (m.status) {
    meta.append(el("span", { class: "status", "data-status": m.status.state, title: m.status.text, text: m.status.state }));
    if (m.status.state !== "delivered") meta.append(el("span", { class: "trail", text: m.status.text }));
  }
  li.append(meta);
  return li;
}

async function sendFromMatrix(event) {
  event.preventDefault();
  const text = $("matrix-text");
  if (!state.room || (!text.value.trim() && !state.matrixFile)) return;
  const form = new FormData();
  form.append("room", state.room);
  form.append("body", text.value);
  if (state.matrixFile) form.append("media", state.matrixFile, state.matrixFile.name);
  const button = $("matrix-send");
  button.disabled = true;
  try {
    await api("/api/matrix/send", { method: "POST", body: form });
    text.value = "";
    setAttachment("matrix", null);
    showError("matrix-error", null);
  } catch (err) {
    showError("matrix-error", err);
  } finally {
    button.disabled = !state.room;
    text.focus();
  }
}

// --- Wiring ----------------------------------------------------------------

function setAttachment(pane, file) {
  state[pane + "File"] = file;
  $(pane + "-attachment").hidden = !file;
  $(pane + "-attachment-name").textContent = file ? `Attached: ${file.name} (${Math.ceil(file.size / 1024)} KB)` : "";
  if (!file) $(pane + "-file").value = "";
}

async function main() {
  for (;;) {
    try {
      state.info = await api("/api/info");
      break;
    } catch (err) {
      showError("phone-error", err);
      await sleep(1500);
    }
  }
  showError("phone-error", null);
  const info = state.info;
  $("info-user").textContent = info.matrixUser;
  $("info-number").textContent = prettyPhone(info.twilioNumber);
  $("info-homeserver").textContent = info.homeserver;
  $("info-account").textContent = info.accountSid;
  $("matrix-user").textContent = info.matrixUser;
  $("matrix").hidden = !info.matrixEnabled;

  $("phone-pick").addEventListener("submit", (event) => {
    event.preventDefault();
    usePhone(normalizePhone($("phone-number").value));
  });
  $("phone-compose").addEventListener("submit", sendFromPhone);
  $("phone-file").addEventListener("change", (e) => setAttachment("phone", e.target.files[0] || null));
  $("phone-attachment-clear").addEventListener("click", () => setAttachment("phone", null));
  $("phone-behavior").addEventListener("change", async (e) => {
    try {
      await postJSON("/api/phone/behavior", { number: state.phone, behavior: e.target.value });
      showError("phone-error", null);
    } catch (err) {
      showError("phone-error", err);
    }
  });
  $("phone-hold").addEventListener("change", async (e) => {
    try {
      await postJSON("/api/phone/hold", { hold: e.target.checked });
      showError("phone-error", null);
    } catch (err) {
      showError("phone-error", err);
    }
  });
  $("matrix-compose").addEventListener("submit", sendFromMatrix);
  $("matrix-file").addEventListener("change", (e) => setAttachment("matrix", e.target.files[0] || null));
  $("matrix-attachment-clear").addEventListener("click", () => setAttachment("matrix", null));

  const fromHash = decodeURIComponent(location.hash.slice(1));
  usePhone(fromHash || info.suggestedPhones[0]);
  phoneLoop();
  if (info.matrixEnabled) matrixLoop();
}

main();
