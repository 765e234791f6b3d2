// The mqim web chat client: plain DOM code on the client library
// (lib/index.js). It holds only the signed-in user's own token, in memory
// and in this tab's sessionStorage; never a service key.
import { MqimClient, login, directConv } from "./lib/index.js";

const $ = (id) => document.getElementById(id);
const STORE = "mqim.demo";
const PAGE = 30;

const state = {
  client: null,
  open: null,           // the open conversation id
  msgs: new Map(),      // id -> message of the open conversation
  oldest: Infinity,     // lowest seq loaded of the open conversation
  loadingOlder: false,
  noMoreOlder: false,
  typingTimer: null,
  lastTyping: 0,
};
// For tests and the curious: the page's client and state.
window.mqimDemo = state;

async function serverConfig() {
  const r = await fetch("config.json", { cache: "no-store" });
  const cfg = await r.json();
  const q = new URLSearchParams(location.search);
  if (q.get("ws")) {
    // The token goes where this URL says: only this page's own host, or a
    // link to the page naming another host would hand the token over.
    let u = null;
    try { u = new URL(q.get("ws")); } catch { /* refused below */ }
    if (!u || (u.protocol !== "ws:" && u.protocol !== "wss:") || u.hostname !== location.hostname) {
      throw new Error("?ws= must be a ws:// or wss:// URL on this page's host (" + location.hostname + ")");
    }
    return u.href;
  }
  if (!cfg.ws_port) throw new Error("this server has no MQTT WebSocket listener (mqtt.ws_addr is empty)");
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.hostname}:${cfg.ws_port}${cfg.ws_path || "/"}`;
}

function showError(where, e) {
  $(where).textContent = e ? (e.code ? `${e.code}: ${e.message}` : String(e.message || e)) : "";
}

// ---- sign in

function saved() {
  try { return JSON.parse(sessionStorage.getItem(STORE) || "null"); } catch { return null; }
}

async function start(userId, token, deviceId) {
  const wsUrl = await serverConfig();
  const c = new MqimClient({ wsUrl, httpUrl: location.origin, userId, token, deviceId });
  state.client = c;
  c.on("conversations", renderList);
  c.on("message", onMessage);
  // A recall or an edit is a record with a seq of its own (it counts as
  // unread like a message): the open conversation reads it at once.
  c.on("recall", (ev) => {
    const m = state.msgs.get(ev.id);
    if (m) { m.recalled = true; m.body = null; renderMessage(m); }
    if (ev.conv === state.open && ev.by !== c.userId) markOpenRead();
  });
  c.on("edit", (ev) => {
    const m = state.msgs.get(ev.id);
    if (m) { m.body = ev.body; m.edited_at = ev.ts; renderMessage(m); }
    if (ev.conv === state.open && ev.by !== c.userId) markOpenRead();
  });
  c.on("read", (ev) => { if (ev.conv === state.open && ev.user !== c.userId) renderReceipts(); });
  c.on("typing", onTyping);
  c.on("status", ({ connected }) => { $("status").classList.toggle("online", connected); $("status").title = connected ? "connected" : "reconnecting…"; });
  c.on("token", () => sessionStorage.setItem(STORE, JSON.stringify({ userId, token: c.token, deviceId: c.deviceId })));
  c.on("group", () => { if (state.open) renderHeader(); });
  c.on("error", (e) => {
    showError("chat-error", e);
    // An expired or revoked token (a laptop that slept past it, a changed
    // password) cannot be renewed: sign in again.
    if (e.code === "unauthorized" && !c.connected) {
      c.disconnect();
      sessionStorage.removeItem(STORE);
      $("chat").hidden = true;
      $("signin").hidden = false;
      showError("signin-error", new Error("your session ended: sign in again"));
    }
  });
  await c.connect();
  // c.token, not token: a renewal during connect replaced it.
  sessionStorage.setItem(STORE, JSON.stringify({ userId, token: c.token, deviceId: c.deviceId }));
  $("signin").hidden = true;
  $("chat").hidden = false;
  $("me").textContent = userId;
  renderList();
}

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  showError("signin-error", null);
  const userId = $("signin-user").value.trim();
  try {
    let token = $("signin-token").value.trim();
    if (!token) token = (await login(location.origin, userId, $("signin-password").value)).token;
    $("signin-password").value = "";
    $("signin-token").value = "";
    await start(userId, token);
  } catch (err) {
    showError("signin-error", err);
  }
});

$("signout").addEventListener("click", async () => {
  sessionStorage.removeItem(STORE);
  if (state.client) await state.client.disconnect();
  location.reload();
});

// ---- the conversation list

// Group names, fetched once per group (the list carries only ids).
const groupNames = new Map();

function title(c) {
  if (c.kind !== "group") return c.peer || c.id;
  const gid = c.group || c.id.slice(2);
  if (!groupNames.has(gid)) {
    groupNames.set(gid, gid);
    state.client.group(gid).then((g) => {
      if (g && g.name) { groupNames.set(gid, g.name); renderList(); if (state.open === c.id) $("conv-title").textContent = title(c); }
    }).catch(() => {});
  }
  return "# " + groupNames.get(gid);
}

function preview(m) {
  if (!m) return "";
  const who = m.from === state.client.userId ? "you: " : "";
  if (m.recalled) return who + "(recalled)";
  switch (m.type) {
    case "text": return who + (m.body && m.body.text);
    case "image": return who + "[image]";
    case "system": return "[" + ((m.body && m.body.event) || "system") + "]";
    default: return who + "[" + m.type + "]";
  }
}

function renderList() {
  const c = state.client;
  if (!c) return;
  const ul = $("conversations");
  const items = c.list().filter((x) => !x.hidden || x.id === state.open);
  ul.replaceChildren(...items.map((conv) => {
    const li = document.createElement("li");
    li.className = "conv" + (conv.id === state.open ? " active" : "");
    li.dataset.conv = conv.id;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = title(conv);
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.dataset.unread = String(conv.unread);
    badge.textContent = String(conv.unread);
    const pv = document.createElement("span");
    pv.className = "preview";
    pv.textContent = preview(conv.last_message);
    li.append(name, badge, pv);
    li.addEventListener("click", () => openConversation(conv.id));
    return li;
  }));
}

$("newchat-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const peer = $("newchat-user").value.trim();
  if (!peer) return;
  $("newchat-user").value = "";
  const id = directConv(state.client.userId, peer);
  state.client.conversation(id);
  openConversation(id);
});

$("newgroup-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  showError("chat-error", null);
  const name = $("newgroup-name").value.trim();
  const members = $("newgroup-members").value.split(/[\s,]+/).filter(Boolean);
  try {
    const g = await state.client.createGroup({ name, members });
    $("newgroup-name").value = "";
    $("newgroup-members").value = "";
    await state.client.sync("group");
    openConversation("g:" + g.id);
  } catch (err) {
    showError("chat-error", err);
  }
});

// ---- one conversation

async function openConversation(conv) {
  const c = state.client;
  state.open = conv;
  state.msgs = new Map();
  state.oldest = Infinity;
  state.noMoreOlder = false;
  $("messages").replaceChildren();
  $("typing").textContent = "";
  $("composer").hidden = false;
  renderHeader();
  renderList();
  showError("chat-error", null);
  try {
    const page = c.conversations.get(conv)?.last_seq ? await c.messages(conv, { limit: PAGE }) : [];
    if (state.open !== conv) return;
    addMessages(page);
    if (page.length < PAGE) state.noMoreOlder = true;
    scrollToBottom();
    await markOpenRead();
  } catch (err) {
    if (err.code !== "not_found") showError("chat-error", err);
  }
  $("composer-text").focus();
}

function renderHeader() {
  const conv = state.client.conversations.get(state.open);
  $("conv-title").textContent = conv ? title(conv) : state.open;
  $("addmember-form").hidden = !(conv && conv.kind === "group");
  // The peer's presence, polled while the conversation is open.
  if (state.stopPresence) state.stopPresence();
  state.stopPresence = null;
  $("presence").textContent = "";
  if (conv && conv.kind === "direct" && conv.peer) {
    const peer = conv.peer;
    const off = state.client.on("presence", (p) => {
      if (state.open === conv.id && p[peer]) $("presence").textContent = p[peer].online ? "online" : "offline";
    });
    const stop = state.client.watchPresence([peer], 15000);
    state.stopPresence = () => { off(); stop(); };
  }
}

// markOpenRead marks the open conversation read while the page is seen
// (a tab in the background leaves it unread until it is looked at).
async function markOpenRead() {
  const c = state.client;
  if (document.visibilityState === "hidden") return;
  const conv = c.conversations.get(state.open);
  if (conv && conv.unread > 0) {
    try { await c.markRead(state.open); } catch (err) { showError("chat-error", err); }
  }
}

function onMessage(m) {
  if (m.conv !== state.open) return;
  addMessages([m]);
  if (m.from !== state.client.userId) markOpenRead();
}

// addMessages puts messages of the open conversation in place by seq,
// once each (by id); recall and edit records are not shown themselves.
function addMessages(list) {
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  for (const m of list) {
    if (m.type === "recall" || m.type === "edit") continue;
    if (m.seq < state.oldest) state.oldest = m.seq;
    if (state.msgs.has(m.id)) { state.msgs.set(m.id, m); renderMessage(m); continue; }
    state.msgs.set(m.id, m);
    const el = renderMessage(m);
    let next = null;
    for (const other of box.children) {
      if (Number(other.dataset.seq) > m.seq) { next = other; break; }
    }
    box.insertBefore(el, next);
  }
  if (atBottom) scrollToBottom();
}

function scrollToBottom() { const b = $("messages"); b.scrollTop = b.scrollHeight; }

function renderMessage(m) {
  const mine = m.from === state.client.userId;
  let el = document.querySelector(`#messages .msg[data-id="${CSS.escape(m.id)}"]`);
  if (!el) {
    el = document.createElement("div");
    el.dataset.id = m.id;
    el.dataset.seq = String(m.seq);
  }
  el.className = "msg" + (mine ? " mine" : "") + (m.recalled ? " recalled" : "") + (m.type === "system" ? " system" : "");
  const parts = [];
  if (!mine && m.type !== "system" && m.conv.startsWith("g:")) {
    const from = document.createElement("div");
    from.className = "from";
    from.textContent = m.from;
    parts.push(from);
  }
  const body = document.createElement("div");
  body.className = "text";
  if (m.recalled) body.textContent = "message recalled";
  else if (m.type === "text") body.textContent = m.body.text;
  else if (m.type === "image" && /^https?:\/\//i.test(m.body.url)) {
    const img = document.createElement("img");
    img.src = m.body.url;
    img.alt = "image";
    img.loading = "lazy";
    body.append(img);
  } else if (m.type === "system") body.textContent = systemText(m);
  else body.textContent = `[${m.type}] ${JSON.stringify(m.body)}`;
  parts.push(body);
  if (m.type !== "system") {
    const meta = document.createElement("div");
    meta.className = "meta";
    const time = document.createElement("span");
    time.textContent = new Date(m.ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) + (m.edited_at ? " (edited)" : "");
    meta.append(time);
    if (mine && !m.recalled) {
      const actions = document.createElement("span");
      actions.className = "actions";
      if (m.type === "text") actions.append(button("edit", () => editMessage(m)));
      actions.append(button("recall", () => state.client.recall(m.id).catch((e) => showError("chat-error", e))));
      meta.append(actions);
      const receipt = document.createElement("span");
      receipt.className = "receipt";
      meta.append(receipt);
    }
    parts.push(meta);
  }
  el.replaceChildren(...parts);
  renderReceipts();
  return el;
}

function systemText(m) {
  const b = m.body || {};
  const who = b.user || (b.user_ids && b.user_ids.join(", ")) || "";
  return [b.event || "system", who].filter(Boolean).join(": ");
}

function button(label, fn) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", fn);
  return b;
}

function editMessage(m) {
  const text = prompt("Edit message", m.body.text);
  if (text === null || text === m.body.text) return;
  state.client.edit(m.id, text).catch((e) => showError("chat-error", e));
}

// renderReceipts marks one's own messages the peer has read (1:1).
function renderReceipts() {
  const conv = state.client.conversations.get(state.open);
  if (!conv || conv.kind !== "direct") return;
  for (const r of document.querySelectorAll("#messages .msg.mine .receipt")) {
    const seq = Number(r.closest(".msg").dataset.seq);
    const read = seq <= conv.peer_read_seq;
    r.classList.toggle("read", read);
    r.textContent = read ? "✓✓ read" : "✓ sent";
  }
}

function onTyping(ev) {
  if (ev.conv !== state.open) return;
  $("typing").textContent = ev.user + " is typing…";
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(() => { $("typing").textContent = ""; }, 5000);
}

// Scrolling to the top loads the page before the oldest message shown.
$("messages").addEventListener("scroll", async () => {
  const box = $("messages");
  if (box.scrollTop > 60 || state.loadingOlder || state.noMoreOlder || !state.open || state.oldest <= 1) return;
  state.loadingOlder = true;
  const conv = state.open;
  try {
    const page = await state.client.messages(conv, { beforeSeq: state.oldest, limit: PAGE });
    if (state.open !== conv) return;
    if (page.length < PAGE) state.noMoreOlder = true;
    const before = box.scrollHeight;
    addMessages(page);
    box.scrollTop += box.scrollHeight - before; // keep what was on screen in place
  } catch (err) {
    showError("chat-error", err);
  } finally {
    state.loadingOlder = false;
  }
});

$("composer").addEventListener("submit", async (e) => {
  e.preventDefault();
  const input = $("composer-text");
  const text = input.value.trim();
  if (!text || !state.open) return;
  input.value = "";
  await send(text);
});

$("composer-image").addEventListener("click", async () => {
  const url = prompt("Image URL (https://…)");
  if (!url) return;
  if (!/^https?:\/\//i.test(url)) { showError("chat-error", new Error("an image URL starts with http:// or https://")); return; }
  await send({ type: "image", body: { url } });
});

async function send(msg) {
  showError("chat-error", null);
  try {
    const { message } = await state.client.send(state.open, msg);
    if (message.conv === state.open) addMessages([message]);
    scrollToBottom();
  } catch (err) {
    showError("chat-error", err);
  }
}

$("composer-text").addEventListener("input", () => {
  const now = Date.now();
  if (state.open && now - state.lastTyping > 3000) {
    state.lastTyping = now;
    state.client.typing(state.open);
  }
});

$("addmember-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const uid = $("addmember-user").value.trim();
  if (!uid || !state.open) return;
  try {
    await state.client.addMembers(state.open.slice(2), [uid]);
    $("addmember-user").value = "";
  } catch (err) {
    showError("chat-error", err);
  }
});

document.addEventListener("visibilitychange", () => { if (state.client && state.open) markOpenRead(); });

// ---- boot

const s = saved();
if (s && s.userId && s.token) {
  start(s.userId, s.token, s.deviceId).catch((err) => {
    sessionStorage.removeItem(STORE);
    $("signin").hidden = false;
    showError("signin-error", err);
  });
} else {
  $("signin").hidden = false;
}
