// mqim-client: the client half of the mqim protocol (docs/protocol.md,
// docs/clients.md) over mqtt.js, for browsers and Node.
//
// It connects over MQTT (5 by default, 3.1.1 on request) with the user's
// token, refreshes that token before it expires, sends with a cid and learns
// id/seq from the echo, resends safely after a reconnect, keeps per-
// conversation seq state, detects gaps and catches up (HTTP when an HTTP
// base URL is given, else requests over im/rpc), dedupes by id, and keeps
// the conversation list with exact unread counts. It never logs tokens.

import mqttDefault from "mqtt";

/** Error codes of the wire contract (docs/protocol.md, Errors). */
export const Codes = Object.freeze(["invalid", "unauthorized", "forbidden", "not_member", "muted", "blocked",
  "not_found", "conflict", "too_large", "rate_limited", "unavailable"]);

// MQTT 5 PUBACK reason codes and the error code each stands for when no
// error event names a finer one.
const pubackCodes = { 0x80: "unavailable", 0x87: "forbidden", 0x97: "rate_limited", 0x99: "invalid" };

/** An error with the contract's code ("not_member", ...), or "timeout" / "closed" from the library. */
export class MqimError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{status?: number, retryAfter?: number}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message || code);
    this.name = "MqimError";
    this.code = code;
    this.status = extra.status;
    this.retryAfter = extra.retryAfter;
  }
}

/**
 * The conversation id of a 1:1 conversation between a and b.
 * @param {string} a @param {string} b
 */
export function directConv(a, b) {
  return a <= b ? `d:${a}:${b}` : `d:${b}:${a}`;
}

/**
 * The payload of a JWT (no verification: the server verifies).
 * @param {string} token
 * @returns {{sub?: string, iat?: number, exp?: number}}
 */
export function decodeToken(token) {
  const part = String(token).split(".")[1];
  if (!part) return {};
  const b64 = part.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((part.length + 3) % 4);
  try {
    const bin = typeof atob === "function" ? atob(b64) : Buffer.from(b64, "base64").toString("binary");
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}

/**
 * POST /v1/login: a token for a user with a password.
 * @param {string} httpUrl @param {string} userId @param {string} password
 * @returns {Promise<{token: string, expires_at: number, server_time: number}>}
 */
export async function login(httpUrl, userId, password) {
  return httpJSON(httpUrl, "POST", "/v1/login", "", { user_id: userId, password });
}

async function httpJSON(base, method, path, token, body, wantHeaders) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(base.replace(/\/+$/, "") + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new MqimError("unavailable", "HTTP request failed: " + (e && e.message));
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    const ra = resp.headers.get("Retry-After");
    throw new MqimError(err.code || "unavailable", err.message || `HTTP ${resp.status}`,
      { status: resp.status, retryAfter: ra ? Number(ra) : undefined });
  }
  return wantHeaders ? { data, next: resp.headers.get("X-Next-Cursor") } : data;
}

let counter = 0;
function randomId(n = 8) {
  const c = "abcdefghijklmnopqrstuvwxyz0123456789";
  let s = "";
  for (let i = 0; i < n; i++) s += c[Math.floor(Math.random() * c.length)];
  return s;
}

/**
 * @typedef {object} Message  a stored message, as in the `msg` event
 * @property {string} id @property {string} conv @property {number} seq
 * @property {string} from @property {string} to @property {string} type
 * @property {any} body @property {string} [cid] @property {number} ts
 * @property {string|null} [reply_to] @property {string[]} [mentions] @property {any} [ext]
 * @property {boolean} [recalled] @property {number} [edited_at]
 */

/**
 * @typedef {object} Conversation  one entry of the conversation list, kept current from events
 * @property {string} id @property {"direct"|"group"} kind @property {string} [peer] @property {string} [group]
 * @property {number} last_seq @property {number} read_seq @property {number} min_seq @property {number} unread
 * @property {Message|null} last_message @property {boolean} pinned @property {boolean} muted @property {boolean} hidden
 * @property {number} updated_at @property {number} peer_read_seq  how far the peer has read (1:1, from read receipts)
 */

/**
 * A connection of one device of one user to mqim.
 *
 * Events (client.on(name, fn)): "message" (a Message, live or caught up,
 * once per id), "read", "typing", "recall", "edit", "conv", "group",
 * "friend" (the server's events), "sync" ({reason}: after a catch-up),
 * "conversations" (the list or an unread count changed), "status"
 * ({connected}), "token" ({expires_at}: renewed; the token itself is
 * client.token), "presence" (a poll's answer), "error" (an MqimError
 * that no call returned).
 */
export class MqimClient {
  /**
   * @param {object} opts
   * @param {string} opts.wsUrl  the MQTT WebSocket URL, e.g. ws://localhost:8083/
   * @param {string} opts.userId
   * @param {string} opts.token  the user's access token
   * @param {string} [opts.deviceId]  default: "web-" + random
   * @param {string} [opts.httpUrl]  the HTTP API base (http://localhost:8080); without it requests go over im/rpc
   * @param {5|4} [opts.protocolVersion]  5 (MQTT 5, default) or 4 (MQTT 3.1.1)
   * @param {() => Promise<string|{token: string}>} [opts.renewToken]  the app's own token renewal
   * @param {number} [opts.sendTimeout]  ms before a send fails with "timeout" (default 30000)
   * @param {number} [opts.reconnectDelay]  first reconnect delay in ms (default 500, doubling to 10 s)
   * @param {any} [opts.mqtt]  the mqtt.js module (default: the imported one)
   */
  constructor(opts) {
    if (!opts || !opts.wsUrl || !opts.userId || !opts.token) throw new TypeError("wsUrl, userId and token are required");
    this.userId = opts.userId;
    this.deviceId = opts.deviceId || "web-" + randomId();
    this.clientId = `${this.userId}/${this.deviceId}`;
    this.replyTopic = "im/r/" + this.clientId;
    this.wsUrl = opts.wsUrl;
    this.httpUrl = opts.httpUrl || "";
    this.protocolVersion = opts.protocolVersion === 4 ? 4 : 5;
    this.sendTimeout = opts.sendTimeout || 30000;
    this.reconnectDelay = opts.reconnectDelay || 500;
    this._renewCallback = opts.renewToken;
    this._mqtt = opts.mqtt || mqttDefault;
    Object.defineProperty(this, "_token", { value: opts.token, writable: true, enumerable: false });

    /** @type {Map<string, Conversation>} */
    this.conversations = new Map();
    this.connected = false;
    this._listeners = new Map();
    this._seen = new Set();       // ids and "conv#seq" of the stored events applied: dedupe
    this._seenOrder = [];
    this._high = new Map();       // conv -> highest seq applied in order
    this._guessed = new Set();    // convs whose _high came from a live event, not from the list
    this._chains = new Map();     // conv -> promise: one conv's events are applied in order
    this._pending = new Map();    // cid -> pending send
    this._rpc = new Map();        // request id -> {resolve, reject, timer}
    this._since = 0;              // largest updated_at seen
    this._client = null;
    this._wanted = false;         // connect() called and not disconnect()
    this._generation = 0;
    this._backoff = this.reconnectDelay;
    this._timers = new Set();
    this._dropIncoming = 0;
  }

  /** The current access token (not enumerable, never logged). */
  get token() { return this._token; }

  // ---- events

  /**
   * Listen to an event; returns a function that removes the listener.
   * @param {string} name @param {(ev: any) => void} fn
   */
  on(name, fn) {
    if (!this._listeners.has(name)) this._listeners.set(name, new Set());
    this._listeners.get(name).add(fn);
    return () => this.off(name, fn);
  }

  /** @param {string} name @param {(ev: any) => void} fn */
  off(name, fn) { this._listeners.get(name)?.delete(fn); }

  _emit(name, ev) {
    for (const fn of [...(this._listeners.get(name) || [])]) {
      try { fn(ev); } catch (e) { if (name !== "error") this._emit("error", e); }
    }
  }

  // ---- connection

  /**
   * Connects, then loads the conversation list (or syncs what changed).
   * Resolves once connected and synced, and reconnects by itself from then
   * on; rejects (and stays disconnected) when that first connect or sync
   * fails, e.g. with "unauthorized" for a bad or expired token.
   */
  async connect() {
    this._wanted = true;
    this._scheduleRefresh();
    try {
      await this._open();
      await this.sync("connect");
    } catch (e) {
      await this.disconnect();
      throw e;
    }
  }

  /** Closes the connection and stops reconnecting (connect() resumes). */
  async disconnect() {
    this._wanted = false;
    this._clearTimers();
    clearTimeout(this._refreshTimer);
    const c = this._client;
    this._client = null;
    if (c) await new Promise((res) => c.end(true, {}, () => res()));
    this._setConnected(false);
    this._failRequests("closed", "disconnected");
  }

  // _failRequests rejects the requests in flight: their replies went with
  // the connection (a catch-up waiting on one would hold its conversation's
  // events until sendTimeout).
  _failRequests(code, message) {
    for (const [id, p] of this._rpc) { clearTimeout(p.timer); p.reject(new MqimError(code, message)); this._rpc.delete(id); }
  }

  /** Test hook: breaks the socket as a network loss would; the client reconnects by itself. */
  dropConnection() {
    const c = this._client;
    if (c && c.stream) c.stream.destroy();
  }

  /** Test hook: silently drops the next n incoming events, as a lossy link would. */
  dropIncoming(n) { this._dropIncoming = n; }

  _setConnected(v) {
    if (this.connected === v) return;
    this.connected = v;
    this._emit("status", { connected: v });
  }

  _open() {
    const gen = ++this._generation;
    return new Promise((resolve, reject) => {
      const c = this._mqtt.connect(this.wsUrl, {
        clientId: this.clientId,
        username: this.userId,
        password: this._token,
        protocolVersion: this.protocolVersion,
        clean: true,
        reconnectPeriod: 0,
        connectTimeout: 10000,
        keepalive: 30,
        resubscribe: false,
      });
      this._client = c;
      let settled = false;
      c.on("connect", () => {
        if (gen !== this._generation) return;
        settled = true;
        this._backoff = this.reconnectDelay;
        this._setConnected(true);
        this._resendPending();
        resolve();
      });
      c.on("disconnect", (packet) => {
        // MQTT 5: the server says why it ends the connection. Taken over by
        // another connection of this client id (the same device id in two
        // places), or the user disabled / the password changed: reconnecting
        // would only fight or fail, so stop and tell the app.
        if (gen !== this._generation || !packet) return;
        const why = { 0x8e: ["conflict", "another connection of this device took the session over"],
          0x98: ["unauthorized", "the user was disabled or the password changed"] }[packet.reasonCode];
        if (why) {
          this._wanted = false;
          this._setConnected(false);
          this._emit("error", new MqimError(why[0], why[1]));
        }
      });
      c.on("message", (topic, payload) => {
        if (gen === this._generation) this._onPacket(topic, payload);
      });
      c.on("error", (err) => {
        if (gen !== this._generation) return;
        if (!settled) {
          settled = true;
          const code = err && (err.code === 134 || err.code === 4 || err.code === 5) ? "unauthorized" : "unavailable";
          c.end(true);
          reject(new MqimError(code, "MQTT connect refused: " + (err && err.message)));
        }
      });
      c.on("close", () => {
        if (gen !== this._generation) return;
        c.end(true); // this client object is done: a reconnect makes a new one
        this._setConnected(false);
        this._failRequests("unavailable", "the connection was lost");
        if (!settled) {
          settled = true;
          reject(new MqimError("unavailable", "MQTT connection closed"));
          return;
        }
        if (this._wanted) this._reconnectLater();
      });
    });
  }

  _reconnectLater() {
    if (this._reconnecting) return;
    this._reconnecting = true;
    const delay = this._backoff;
    this._backoff = Math.min(this._backoff * 2, 10000);
    this._timer(async () => {
      this._reconnecting = false;
      if (!this._wanted) return;
      try {
        if (this._expiresIn() < 2000) await this._renew();
        await this._open();
        await this.sync("reconnect");
      } catch (e) {
        if (e && e.code === "unauthorized") {
          try { await this._renew(); } catch { /* the next attempt says */ }
        }
        this._emit("error", e);
        if (this._wanted && !this.connected) this._reconnectLater();
      }
    }, delay);
  }

  _timer(fn, ms) {
    const t = setTimeout(() => { this._timers.delete(t); fn(); }, ms);
    this._timers.add(t);
    return t;
  }

  _clearTimers() {
    for (const t of this._timers) clearTimeout(t);
    this._timers.clear();
    this._reconnecting = false;
  }

  // ---- token

  _expiresIn() {
    const exp = decodeToken(this._token).exp;
    return exp ? exp * 1000 - Date.now() : Infinity;
  }

  _scheduleRefresh() {
    clearTimeout(this._refreshTimer);
    const p = decodeToken(this._token);
    if (!p.exp || !this._wanted) return; // a renewal that ends after disconnect() arms nothing
    const life = p.iat ? (p.exp - p.iat) * 1000 : 600000;
    // A fifth of the lifetime, at most 10 min (a background tab's timers may
    // run late by a minute), at least 1 s.
    const margin = Math.max(1000, Math.min(600000, life / 5));
    const wait = Math.max(0, p.exp * 1000 - margin - Date.now());
    this._refreshTimer = setTimeout(() => this._refreshNow(), Math.min(wait, 2 ** 31 - 1));
  }

  // _refreshNow renews the token, and on failure tries again while the
  // token still holds (over im/rpc it cannot be renewed once the server
  // ends the connection at exp).
  _refreshNow() {
    if (!this._wanted) return;
    const token = this._token;
    this.refreshToken().catch((e) => {
      this._emit("error", e);
      const left = this._expiresIn();
      if (!this._wanted || this._token !== token || left <= 0) return;
      clearTimeout(this._refreshTimer);
      this._refreshTimer = setTimeout(() => this._refreshNow(), Math.max(200, Math.min(5000, left / 3)));
    });
  }

  /**
   * Gets a fresh token (the app's renewToken, else POST /v1/token, else the
   * `token` request) and reconnects with it.
   * @returns {Promise<void>}
   */
  async refreshToken() {
    await this._renew();
    // The connection must not outlive the old token: move to the new one.
    if (this._wanted && this._client && this.connected) {
      const old = this._client;
      this._generation++; // the old connection's close is not ours to handle
      old.end(true);
      this._setConnected(false);
      this._failRequests("unavailable", "the connection moved to the new token");
      try {
        await this._open();
        await this.sync("reconnect");
      } catch (e) {
        this._emit("error", e);
        this._reconnectLater();
      }
    }
  }

  // _renew gets a fresh token, without reconnecting.
  async _renew() {
    let res;
    if (this._renewCallback) res = await this._renewCallback();
    else if (this.httpUrl) res = await httpJSON(this.httpUrl, "POST", "/v1/token", this._token);
    else res = await this.request("token", {});
    const tok = typeof res === "string" ? res : res && res.token;
    if (!tok) throw new MqimError("unauthorized", "token renewal gave no token");
    this._token = tok;
    this._emit("token", { expires_at: (decodeToken(tok).exp || 0) * 1000 });
    this._scheduleRefresh();
  }

  // ---- incoming

  _onPacket(topic, payload) {
    let ev;
    try { ev = JSON.parse(typeof payload === "string" ? payload : new TextDecoder().decode(payload)); } catch { return; }
    if (!ev || typeof ev !== "object") return;
    if (this._dropIncoming > 0 && ev.kind !== "reply") { this._dropIncoming--; return; }
    switch (ev.kind) {
      case "reply": return this._onReply(ev);
      case "msg": case "recall": case "edit":
        return void this._inConv(ev.conv, () => this._onStored(ev, true));
      case "read": return this._onRead(ev);
      case "typing": if (ev.user !== this.userId) this._emit("typing", ev); return;
      case "conv": return this._onConv(ev);
      case "error": return this._onError(ev);
      case "group": return this._onGroup(ev);
      case "friend": this._emit("friend", ev); return;
      case "sync":
        if (ev.conv) void this._inConv(ev.conv, () => this._catchUp(ev.conv)).then(() => this._emit("sync", { reason: ev.reason, conv: ev.conv }));
        else void this.sync(ev.reason).catch((e) => this._emit("error", e));
        return;
    }
  }

  // _inConv runs fn after everything queued for conv: one conversation's
  // events and catch-ups are applied one at a time, in order.
  _inConv(conv, fn) {
    const prev = this._chains.get(conv) || Promise.resolve();
    const next = prev.then(fn).catch((e) => this._emit("error", e));
    this._chains.set(conv, next);
    return next;
  }

  // _onStored handles a stored event (a msg, or a recall/edit record, live
  // or from a page): dedupe by id, gap check when live, then apply.
  async _onStored(ev, live) {
    const key = ev.conv + "#" + ev.seq;
    if (this._seen.has(key) || (ev.kind === "msg" && this._seen.has(ev.id))) {
      // A resent cid is answered with the original message: settle the send.
      if (ev.kind === "msg" && ev.from === this.userId && ev.cid) this._settle(ev.cid, null, ev);
      return;
    }
    const high = this._high.get(ev.conv);
    if (live && high !== undefined && ev.seq > high + 1) {
      await this._catchUp(ev.conv);
      if (this._seen.has(key)) return;
    }
    if (high === undefined && live) {
      // A conversation new to this client: earlier messages are history,
      // or were missed while away; the next list row tells (sync).
      this._high.set(ev.conv, ev.seq - 1);
      this._guessed.add(ev.conv);
    }
    this._apply(ev, key);
  }

  _markSeen(id) {
    this._seen.add(id);
    this._seenOrder.push(id);
    if (this._seenOrder.length > 40000) this._seen.delete(this._seenOrder.shift());
  }

  // _apply delivers one stored event to the app and updates seq and unread.
  _apply(ev, key) {
    this._markSeen(key);
    if (ev.kind === "msg" && ev.id) this._markSeen(ev.id);
    const high = this._high.get(ev.conv) || 0;
    if (ev.seq > high) this._high.set(ev.conv, ev.seq);
    const from = ev.kind === "msg" ? ev.from : ev.by;
    const c = this._conv(ev.conv, from === this.userId ? ev.to : undefined);
    if (ev.seq > c.last_seq) {
      c.last_seq = ev.seq;
      c.updated_at = Math.max(c.updated_at, ev.ts || 0);
      if (ev.kind === "msg" && ev.type !== "recall" && ev.type !== "edit") c.last_message = ev;
    }
    if (from === this.userId && ev.seq > c.read_seq) c.read_seq = ev.seq;
    c.hidden = false;
    this._recount(c);
    if (ev.kind === "msg") {
      if (ev.type === "recall" && ev.body) this._emit("recall", { kind: "recall", conv: ev.conv, id: ev.body.id, by: ev.from, ts: ev.ts, seq: ev.seq });
      else if (ev.type === "edit" && ev.body) this._emit("edit", { kind: "edit", conv: ev.conv, id: ev.body.id, by: ev.from, body: ev.body.body, ts: ev.ts, seq: ev.seq });
      else this._emit("message", ev);
      if (from === this.userId && ev.cid) this._settle(ev.cid, null, ev);
    } else {
      this._emit(ev.kind, ev);
    }
    this._emit("conversations", this.list());
  }

  _conv(id, peerHint) {
    let c = this.conversations.get(id);
    if (!c) {
      const group = id.startsWith("g:") ? id.slice(2) : undefined;
      let peer;
      if (!group) {
        const [, a, b] = id.split(":");
        peer = a === this.userId ? b : a;
        if (peerHint) peer = peerHint;
      }
      c = { id, kind: group ? "group" : "direct", peer, group, last_seq: 0, read_seq: 0, min_seq: 0, unread: 0,
        last_message: null, pinned: false, muted: false, hidden: false, member: true, updated_at: 0, peer_read_seq: 0 };
      this.conversations.set(id, c);
    }
    return c;
  }

  _recount(c) { c.unread = Math.max(0, c.last_seq - c.read_seq); }

  _onRead(ev) {
    const c = this._conv(ev.conv);
    if (ev.user === this.userId) {
      if (ev.seq > c.read_seq) c.read_seq = ev.seq;
    } else if (ev.seq > c.peer_read_seq) {
      c.peer_read_seq = ev.seq;
    }
    this._recount(c);
    this._emit("read", ev);
    this._emit("conversations", this.list());
  }

  _onConv(ev) {
    const c = this._conv(ev.conv);
    for (const k of ["pinned", "muted", "hidden"]) if (typeof ev[k] === "boolean") c[k] = ev[k];
    if (typeof ev.read_seq === "number" && ev.read_seq > c.read_seq) c.read_seq = ev.read_seq;
    this._recount(c);
    this._emit("conv", ev);
    this._emit("conversations", this.list());
  }

  _onGroup(ev) {
    this._emit("group", ev);
    const conv = "g:" + ev.group;
    if (ev.user === this.userId || ev.event === "created") {
      // My membership changed: the list row (read_seq at the join, member) comes from the store.
      this.sync("group").catch((e) => this._emit("error", e));
    }
    if ((ev.event === "left" || ev.event === "kicked") && ev.user === this.userId) {
      const c = this.conversations.get(conv);
      if (c) { c.member = false; c.unread = 0; c.read_seq = c.last_seq; }
    }
  }

  _onError(ev) {
    if (ev.device === this.deviceId && ev.cid && this._pending.has(ev.cid)) {
      this._settle(ev.cid, new MqimError(ev.code, ev.message, { retryAfter: ev.retry_after }));
      return;
    }
    if (ev.device === this.deviceId) this._emit("error", new MqimError(ev.code, ev.message, { retryAfter: ev.retry_after }));
  }

  // ---- catch-up

  /**
   * Syncs the conversation list (what changed since the last sync, or all
   * of it the first time) and catches up every conversation whose last_seq
   * is above what this client holds. Emits "sync" when done.
   * @param {string} [reason]
   */
  async sync(reason = "manual") {
    const first = this._since === 0;
    const rows = [];
    let cursor = "";
    for (let page = 0; page < 100; page++) {
      const q = { limit: 200 };
      if (!first) q.updated_after = this._since;
      if (cursor) q.cursor = cursor;
      const { data, next } = await this._call("conversations", q, "GET", "/v1/conversations?" + qs(q), undefined, true);
      rows.push(...(data || []));
      if (!next) break;
      cursor = next;
    }
    const jobs = [];
    for (const r of rows) {
      if (r.updated_at > this._since) this._since = r.updated_at;
      // A conversation first seen live after the first list (e.g. while a
      // reconnect's list was on its way) may have missed messages below
      // that event: it counts as new, caught up from its read_seq.
      const known = this._high.has(r.id) && (first || !this._guessed.has(r.id));
      this._guessed.delete(r.id);
      const c = this._conv(r.id);
      const { peer_read_seq: peerRead, read_seq: readSeq, last_seq: lastSeq } = c;
      Object.assign(c, r, { peer_read_seq: peerRead });
      // Neither moves back: events applied while the list was on its way count.
      c.read_seq = Math.max(readSeq, r.read_seq || 0);
      c.last_seq = Math.max(lastSeq, r.last_seq || 0);
      if (!known && first) {
        // Nothing held yet: what came before the first list is history, not missed.
        this._high.set(r.id, r.last_seq);
        if (r.last_message) this._markSeen(r.id + "#" + r.last_message.seq);
      } else if (!known) {
        // New since the last sync (a first message, a group joined while
        // away): what is unread was missed.
        this._high.set(r.id, Math.max(r.min_seq || 0, r.read_seq || 0));
        if (r.last_seq > this._high.get(r.id)) jobs.push(this._inConv(r.id, () => this._catchUp(r.id)));
      } else if (r.last_seq > this._high.get(r.id)) {
        jobs.push(this._inConv(r.id, () => this._catchUp(r.id)));
      }
    }
    await Promise.all(jobs);
    // The rows' counts are the store's; events applied meanwhile only move them up.
    for (const c of this.conversations.values()) {
      if (c.last_seq < (this._high.get(c.id) || 0)) c.last_seq = this._high.get(c.id);
      this._recount(c);
    }
    if (first && this._since === 0) this._since = 1;
    this._emit("conversations", this.list());
    this._emit("sync", { reason });
  }

  // _catchUp pages forward from the highest seq held, applying each message.
  async _catchUp(conv) {
    for (let i = 0; i < 1000; i++) {
      const after = this._high.get(conv) || 0;
      const page = await this.messages(conv, { afterSeq: after, limit: 200 });
      for (const m of page) {
        const key = conv + "#" + m.seq;
        if (this._seen.has(key) || this._seen.has(m.id)) { if (m.seq > (this._high.get(conv) || 0)) this._high.set(conv, m.seq); continue; }
        this._apply(m, key);
      }
      if (page.length < 200) return;
    }
  }

  // ---- requests

  // _call reaches the store over HTTP when httpUrl is set, else over im/rpc.
  async _call(method, params, httpMethod, path, body, paged) {
    if (this.httpUrl) return httpJSON(this.httpUrl, httpMethod, path, this._token, body, paged);
    const res = await this._request(method, params, paged);
    return res;
  }

  /**
   * A request over im/rpc (docs/protocol.md, Requests over MQTT).
   * @param {string} method @param {object} [params]
   */
  async request(method, params = {}) { return this._request(method, params, false); }

  _request(method, params, paged) {
    const c = this._client;
    if (!c || !this.connected) return Promise.reject(new MqimError("unavailable", "not connected"));
    const id = "r-" + randomId(6) + "-" + ++counter;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this._rpc.delete(id); reject(new MqimError("timeout", method + ": no reply")); }, this.sendTimeout);
      this._rpc.set(id, { timer, resolve: (r) => resolve(paged ? { data: r.result, next: r.next_cursor || null } : r.result), reject });
      c.publish("im/rpc", JSON.stringify({ id, method, params }), { qos: 1 }, (err) => {
        if (err && this._rpc.has(id)) {
          // An MQTT 5 refusal comes after the reply: only a lost reply gets here.
          setTimeout(() => {
            const p = this._rpc.get(id);
            if (!p) return;
            this._rpc.delete(id); clearTimeout(timer);
            reject(new MqimError(pubackCodes[err.code] || "unavailable", err.message));
          }, 1000);
        }
      });
    });
  }

  _onReply(ev) {
    const p = this._rpc.get(ev.id);
    if (!p) return;
    this._rpc.delete(ev.id);
    clearTimeout(p.timer);
    if (ev.error) p.reject(new MqimError(ev.error.code, ev.error.message, { retryAfter: ev.error.retry_after }));
    else p.resolve(ev);
  }

  // ---- sending

  _topic(target) {
    if (typeof target === "string") {
      if (target.startsWith("g:")) return "im/g/" + target.slice(2);
      if (target.startsWith("d:")) {
        const [, a, b] = target.split(":");
        return "im/u/" + (a === this.userId ? b : a);
      }
      return "im/u/" + target;
    }
    if (target && target.group) return "im/g/" + target.group;
    if (target && target.to) return "im/u/" + target.to;
    throw new TypeError("send to a conversation id, a user id, {to} or {group}");
  }

  /**
   * Sends a message and resolves with its stored id and seq (from the
   * echo), or rejects with an MqimError of the contract's code. A send
   * that got no answer before a reconnect is sent again with the same cid
   * (stored once).
   * @param {string | {to?: string, group?: string}} target  a conversation id ("d:a:b", "g:x"), a user id, {to} or {group}
   * @param {string | {type?: string, body: any, reply_to?: string, mentions?: string[], ext?: any, cid?: string}} msg  text, or a message
   * @returns {Promise<{id: string, seq: number, message: Message}>}
   */
  send(target, msg) {
    const topic = this._topic(target);
    const m = typeof msg === "string" ? { type: "text", body: { text: msg } } : { type: "text", ...msg };
    const cid = m.cid || `${this.deviceId}-${Date.now().toString(36)}-${randomId(6)}`;
    const payload = { kind: "msg", cid, type: m.type, body: m.body };
    for (const k of ["reply_to", "mentions", "ext"]) if (m[k] !== undefined) payload[k] = m[k];
    return new Promise((resolve, reject) => {
      const p = { cid, topic, payload: JSON.stringify(payload), resolve, reject, sentGen: 0, acked: false };
      p.timer = setTimeout(() => this._settle(cid, new MqimError("timeout", "no echo for " + cid)), this.sendTimeout);
      this._pending.set(cid, p);
      if (this.connected) this._publishPending(p);
    });
  }

  _publishPending(p) {
    const c = this._client;
    if (!c) return;
    p.sentGen = this._generation;
    p.acked = false;
    c.publish(p.topic, p.payload, { qos: 1 }, (err) => {
      if (!this._pending.has(p.cid)) return;
      if (!err) { p.acked = true; return; }
      const code = pubackCodes[err.code];
      if (!code) return; // the connection went: resent after the reconnect
      if (code === "unavailable") {
        // Not stored: the server asks for a resend (same cid, stored once).
        setTimeout(() => { if (this._pending.has(p.cid) && this.connected) this._publishPending(p); }, 1000);
        return;
      }
      // The error event names the finer code (not_member, blocked, ...); wait for it briefly.
      setTimeout(() => this._settle(p.cid, new MqimError(code, err.message)), 2000);
    });
  }

  _resendPending() {
    for (const p of this._pending.values()) if (p.sentGen !== this._generation) this._publishPending(p);
  }

  _settle(cid, err, ev) {
    const p = this._pending.get(cid);
    if (!p) return;
    this._pending.delete(cid);
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve({ id: ev.id, seq: ev.seq, message: ev });
  }

  /**
   * Tells the peer or the group that this user is typing (for 5 s).
   * @param {string} conv
   */
  typing(conv) {
    if (this._client && this.connected) this._client.publish(this._topic(conv), JSON.stringify({ kind: "typing" }), { qos: 0 });
  }

  /**
   * Marks conv read up to seq (default: its last_seq).
   * @param {string} conv @param {number} [seq]
   */
  async markRead(conv, seq) {
    const c = this._conv(conv);
    const s = seq === undefined ? c.last_seq : seq;
    if (s <= c.read_seq) return;
    await this._call("read", { conv, seq: s }, "POST", `/v1/conversations/${enc(conv)}/read`, { seq: s });
    if (s > c.read_seq) c.read_seq = s;
    this._recount(c);
    this._emit("conversations", this.list());
  }

  /** Withdraws a message. @param {string} id  @param {string} [conv] needed without HTTP */
  async recall(id, conv) {
    if (this.httpUrl) return httpJSON(this.httpUrl, "POST", `/v1/messages/${enc(id)}/recall`, this._token, {});
    return this._publishAcked(this._topic(conv), { kind: "recall", id });
  }

  /** Replaces the body of one's own text message. @param {string} id @param {any} body @param {string} [conv] needed without HTTP */
  async edit(id, body, conv) {
    if (typeof body === "string") body = { text: body };
    if (this.httpUrl) return httpJSON(this.httpUrl, "PATCH", `/v1/messages/${enc(id)}`, this._token, { body });
    return this._publishAcked(this._topic(conv), { kind: "edit", id, body });
  }

  _publishAcked(topic, obj) {
    const c = this._client;
    if (!c || !this.connected) return Promise.reject(new MqimError("unavailable", "not connected"));
    return new Promise((resolve, reject) => c.publish(topic, JSON.stringify(obj), { qos: 1 }, (err) => {
      if (err) reject(new MqimError(pubackCodes[err.code] || "unavailable", err.message));
      else resolve();
    }));
  }

  /**
   * A page of history, ascending. With afterSeq: messages above it (catch-up);
   * with beforeSeq: the page below it (scrolling up); with neither: the newest page.
   * @param {string} conv @param {{afterSeq?: number, beforeSeq?: number, limit?: number}} [o]
   * @returns {Promise<Message[]>}
   */
  async messages(conv, o = {}) {
    const q = { limit: o.limit || 50 };
    if (o.afterSeq !== undefined) q.after_seq = o.afterSeq;
    if (o.beforeSeq !== undefined) q.before_seq = o.beforeSeq;
    const page = (await this._call("messages", { conv, ...q }, "GET", `/v1/conversations/${enc(conv)}/messages?${qs(q)}`)) || [];
    return o.afterSeq !== undefined ? page : page.slice().reverse();
  }

  /**
   * The conversation conv, from the list or, for one with no message yet
   * (a new 1:1 chat), a fresh local entry.
   * @param {string} conv @returns {Conversation}
   */
  conversation(conv) { return this._conv(conv); }

  /** The conversation list: pinned first, then newest first. @returns {Conversation[]} */
  list() {
    return [...this.conversations.values()].sort((a, b) =>
      (b.pinned - a.pinned) || (b.updated_at - a.updated_at) || (a.id < b.id ? -1 : 1));
  }

  /** Total unread over the conversations not muted. */
  totalUnread() {
    let n = 0;
    for (const c of this.conversations.values()) if (!c.muted) n += c.unread;
    return n;
  }

  /** Pin, mute or hide a conversation. @param {string} conv @param {{pinned?: boolean, muted?: boolean, hidden?: boolean}} set */
  updateConversation(conv, set) {
    return this._call("conversation.update", { conv, ...set }, "PATCH", `/v1/conversations/${enc(conv)}`, set);
  }

  // ---- users, groups, friends, presence

  /** @param {string} uid */
  user(uid) { return this._call("user", { user_id: uid }, "GET", `/v1/users/${enc(uid)}`); }

  /** @param {string[]} uids @returns {Promise<Object<string, {online: boolean, devices: number, last_seen: number}>>} */
  presence(uids) {
    return this._call("presence", { user_ids: uids }, "GET", `/v1/presence?user_ids=${uids.map(enc).join(",")}`);
  }

  /**
   * Polls presence of uids every intervalMs, emitting "presence" with each answer; returns a stop function.
   * @param {string[]} uids @param {number} [intervalMs]
   */
  watchPresence(uids, intervalMs = 15000) {
    let stopped = false;
    const tick = async () => {
      if (stopped) return;
      try { this._emit("presence", await this.presence(uids)); } catch (e) { this._emit("error", e); }
      if (!stopped) t = setTimeout(tick, intervalMs);
    };
    let t = setTimeout(tick, 0);
    return () => { stopped = true; clearTimeout(t); };
  }

  /** @param {string} gid */
  group(gid) { return this._call("group", { group: gid }, "GET", `/v1/groups/${enc(gid)}`); }

  /** @param {string} gid */
  members(gid) { return this._call("members", { group: gid }, "GET", `/v1/groups/${enc(gid)}/members`); }

  _http(method, path, body) {
    if (!this.httpUrl) return Promise.reject(new MqimError("invalid", "this call needs the HTTP API (httpUrl)"));
    return httpJSON(this.httpUrl, method, path, this._token, body);
  }

  /** @param {{id?: string, name: string, avatar?: string, members?: string[], join_policy?: string, ext?: any}} g */
  createGroup(g) { return this._http("POST", "/v1/groups", g); }
  /** @param {string} gid @param {object} set */
  updateGroup(gid, set) { return this._http("PATCH", `/v1/groups/${enc(gid)}`, set); }
  /** @param {string} gid @param {string[]} uids */
  addMembers(gid, uids) { return this._http("POST", `/v1/groups/${enc(gid)}/members`, { user_ids: uids }); }
  /** Kicks uid, or leaves when uid is oneself. @param {string} gid @param {string} uid */
  removeMember(gid, uid) { return this._http("DELETE", `/v1/groups/${enc(gid)}/members/${enc(uid)}`); }
  /** @param {string} gid */
  leaveGroup(gid) { return this.removeMember(gid, this.userId); }
  /** @param {string} gid */
  joinGroup(gid) { return this._http("POST", `/v1/groups/${enc(gid)}/join`, {}); }
  /** @param {string} gid */
  dissolveGroup(gid) { return this._http("DELETE", `/v1/groups/${enc(gid)}`); }
  /** @param {string} to @param {string} [message] */
  requestFriend(to, message) { return this._http("POST", "/v1/friends/requests", message ? { to, message } : { to }); }
  /** @param {string} from @param {boolean} accept */
  answerFriend(from, accept) { return this._http("POST", `/v1/friends/requests/${enc(from)}`, { accept }); }
  friendRequests() { return this._http("GET", "/v1/friends/requests"); }
  friends() { return this._http("GET", "/v1/friends"); }
  /** @param {string} uid */
  unfriend(uid) { return this._http("DELETE", `/v1/friends/${enc(uid)}`); }
  /** @param {string} uid */
  block(uid) { return this._http("PUT", `/v1/blocks/${enc(uid)}`); }
  /** @param {string} uid */
  unblock(uid) { return this._http("DELETE", `/v1/blocks/${enc(uid)}`); }
}

function enc(s) { return encodeURIComponent(s); }

function qs(o) {
  return Object.entries(o).map(([k, v]) => `${enc(k)}=${enc(String(v))}`).join("&");
}
