// Tests of mqim-client against a real mqim. The Go test
// internal/e2e/jsclient_test.go starts the server and runs
// `node --test clients/js/test/` with:
//   MQIM_HTTP_URL     http://127.0.0.1:port
//   MQIM_WS_URL       ws://127.0.0.1:port/
//   MQIM_SERVICE_KEY  the test server's service key (to create users)
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { MqimClient, MqimError, directConv, decodeToken, login } from "../src/index.js";

const HTTP = process.env.MQIM_HTTP_URL;
const WS = process.env.MQIM_WS_URL;
const KEY = process.env.MQIM_SERVICE_KEY;
const haveServer = Boolean(HTTP && WS && KEY);
const skip = haveServer ? false : "no server: run through internal/e2e (go test -run JSClient ./internal/e2e/)";

const run = Math.random().toString(36).slice(2, 8);
let n = 0;
const uid = (name) => `${name}-${run}-${++n}`;

async function api(method, path, body, token = KEY) {
  const r = await fetch(HTTP + path, {
    method, headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function user(id, { ttl, password } = {}) {
  await api("PUT", "/v1/users/" + id, password ? { name: id, password } : { name: id });
  return (await api("POST", `/v1/users/${id}/tokens`, ttl ? { ttl_seconds: ttl } : {})).token;
}

const clients = [];
async function connect(id, token, opts = {}) {
  const c = new MqimClient({ wsUrl: WS, httpUrl: HTTP, userId: id, token, deviceId: "t" + ++n, ...opts });
  clients.push(c);
  if (process.env.MQIM_TEST_JS_DEBUG) {
    c.on("error", (e) => console.log(id, "error event:", e));
    const orig = c._onPacket.bind(c);
    c._onPacket = (topic, p) => { console.log(id, "in", topic, new TextDecoder().decode(p).slice(0, 120)); orig(topic, p); };
    c.on("message", (m) => console.log(id, "message", m.conv, m.seq));
  }
  await c.connect();
  return c;
}

// waitFor resolves once check() is true, re-checking on every event of c
// (and on a slow tick as a fallback); it fails after ms.
function waitFor(c, check, what, ms = 15000) {
  return new Promise((resolve, reject) => {
    const offs = [];
    const done = (err) => { offs.forEach((f) => f()); clearInterval(tick); clearTimeout(timer); err ? reject(err) : resolve(); };
    const probe = () => { try { if (check()) done(); } catch (e) { done(e); } };
    for (const ev of ["message", "read", "sync", "conversations", "status", "token", "recall", "edit", "typing", "group", "presence", "friend"]) offs.push(c.on(ev, probe));
    const tick = setInterval(probe, 50);
    const timer = setTimeout(() => done(new Error("timed out waiting for " + what)), ms);
    probe();
  });
}

// messages records every message event of c by id, counting repeats.
function record(c) {
  const seen = new Map();
  const order = [];
  c.on("message", (m) => { seen.set(m.id, (seen.get(m.id) || 0) + 1); order.push(m); });
  return { seen, order, twice: () => [...seen.entries()].filter(([, k]) => k > 1) };
}

test.after(async () => { await Promise.all(clients.map((c) => c.disconnect())); });

test("send resolves with the echo's id and seq; the peer gets it once; unread and receipts are exact", { skip }, async () => {
  const a = uid("alice"), b = uid("bob");
  const ta = await user(a), tb = await user(b);
  const ca = await connect(a, ta), cb = await connect(b, tb);
  const got = record(cb);
  const conv = directConv(a, b);

  const r1 = await ca.send(b, "hello");
  assert.equal(r1.seq, 1);
  assert.match(r1.id, /^[0-9A-Z]{26}$/);
  assert.equal(r1.message.body.text, "hello");
  const r2 = await ca.send({ to: b }, { type: "image", body: { url: "https://example.com/a.png" } });
  assert.equal(r2.seq, 2);

  await waitFor(cb, () => got.order.length === 2, "bob gets both");
  assert.deepEqual(got.order.map((m) => m.id), [r1.id, r2.id]);
  assert.equal(cb.conversations.get(conv).unread, 2);
  assert.equal(ca.conversations.get(conv).unread, 0, "sending moves one's own read_seq");

  await cb.markRead(conv);
  assert.equal(cb.conversations.get(conv).unread, 0);
  await waitFor(ca, () => ca.conversations.get(conv).peer_read_seq === 2, "alice sees the receipt");
  // The server's view agrees with the kept counts.
  const unread = await api("GET", "/v1/unread?user_id=" + b);
  assert.equal(unread.total, 0);
  assert.equal(got.twice().length, 0);
});

test("an event that comes twice is applied once", { skip }, async () => {
  const a = uid("alice"), b = uid("bob");
  const ca = await connect(a, await user(a)), cb = await connect(b, await user(b));
  const got = record(cb);
  const r = await ca.send(b, "once");
  await waitFor(cb, () => got.order.length === 1, "bob gets it");
  const raw = JSON.stringify(got.order[0]);
  cb._onPacket("im/u/" + b, new TextEncoder().encode(raw));
  cb._onPacket("im/u/" + b, new TextEncoder().encode(raw));
  const r2 = await ca.send(b, "twice?");
  await waitFor(cb, () => got.seen.has(r2.id), "bob gets the next one");
  assert.equal(got.seen.get(r.id), 1);
  assert.equal(cb.conversations.get(directConv(a, b)).unread, 2);
});

test("a seq gap is detected and caught up, in order (HTTP)", { skip }, async () => {
  const a = uid("alice"), b = uid("bob");
  const ca = await connect(a, await user(a)), cb = await connect(b, await user(b));
  const got = record(cb);
  await ca.send(b, "m1");
  await waitFor(cb, () => got.order.length === 1, "m1");
  cb.dropIncoming(2); // m2 and m3 are lost on the way
  for (const t of ["m2", "m3", "m4"]) await ca.send(b, t);
  await waitFor(cb, () => got.order.length === 4, "m2..m4");
  assert.deepEqual(got.order.map((m) => m.body.text), ["m1", "m2", "m3", "m4"]);
  assert.deepEqual(got.order.map((m) => m.seq), [1, 2, 3, 4]);
  assert.equal(got.twice().length, 0);
  assert.equal(cb.conversations.get(directConv(a, b)).unread, 4);
});

test("over im/rpc only (no HTTP): sync, gap catch-up and read", { skip }, async () => {
  const a = uid("alice"), b = uid("bob");
  const ta = await user(a), tb = await user(b);
  const ca = await connect(a, ta);
  await ca.send(b, "before bob connects");
  const cb = await connect(b, tb, { httpUrl: "" });
  const conv = directConv(a, b);
  assert.equal(cb.conversations.get(conv).unread, 1, "the list came over im/rpc");
  const got = record(cb);
  cb.dropIncoming(1);
  await ca.send(b, "lost");
  await ca.send(b, "after");
  await waitFor(cb, () => got.order.length === 2, "caught up over im/rpc");
  assert.deepEqual(got.order.map((m) => m.body.text), ["lost", "after"]);
  await cb.markRead(conv);
  await waitFor(ca, () => ca.conversations.get(conv).peer_read_seq === 3, "receipt after an rpc read");
  const page = await cb.messages(conv, { limit: 2 });
  assert.deepEqual(page.map((m) => m.seq), [2, 3], "history ascending");
});

test("messages sent while disconnected are caught up at reconnect, none twice", { skip }, async () => {
  const a = uid("alice"), b = uid("bob"), g = uid("grp");
  const ca = await connect(a, await user(a)), cb = await connect(b, await user(b));
  await api("POST", "/v1/groups", { id: g, name: "G", owner: a, members: [b] });
  const got = record(cb);
  const live = await ca.send(b, "live");
  await waitFor(cb, () => got.seen.has(live.id), "live");

  await cb.disconnect();
  const missed = [];
  for (let i = 0; i < 3; i++) missed.push((await ca.send(b, "missed " + i)).id);
  missed.push((await ca.send({ group: g }, "in the group")).id);
  const syncs = [];
  cb.on("sync", (s) => syncs.push(s.reason));
  await cb.connect();
  for (const id of missed) assert.ok(got.seen.has(id), "caught up " + id);
  assert.equal(got.twice().length, 0);
  assert.ok(syncs.includes("connect"));
  assert.equal(cb.conversations.get(directConv(a, b)).unread, 4);
  assert.equal(cb.conversations.get("g:" + g).unread, 1, "the group's system messages before the join do not count");

  // A broken socket (no disconnect call): the client reconnects by itself and catches up.
  cb.dropConnection();
  const more = [];
  for (let i = 0; i < 3; i++) more.push((await ca.send(b, "around the drop " + i)).id);
  await waitFor(cb, () => more.every((id) => got.seen.has(id)) && cb.connected, "after the drop");
  assert.equal(got.twice().length, 0);
  const server = await api("GET", "/v1/unread?user_id=" + b);
  assert.equal(cb.totalUnread(), server.total);
});

test("a send made offline goes out at connect; a resend of a cid is stored once", { skip }, async () => {
  const a = uid("alice"), b = uid("bob");
  const ta = await user(a);
  await user(b);
  const ca = new MqimClient({ wsUrl: WS, httpUrl: HTTP, userId: a, token: ta, deviceId: "off" });
  clients.push(ca);
  const p = ca.send(b, { body: { text: "queued" }, cid: "fixed-cid-1" });
  await ca.connect();
  const r = await p;
  assert.equal(r.seq, 1);
  const again = await ca.send(b, { body: { text: "queued" }, cid: "fixed-cid-1" });
  assert.equal(again.id, r.id);
  assert.equal(again.seq, 1);
});

test("a send whose echo was lost is resent after the reconnect with its cid: one message", { skip }, async () => {
  const a = uid("alice"), b = uid("bob");
  const ca = await connect(a, await user(a)), cb = await connect(b, await user(b));
  const got = record(cb);
  ca.dropIncoming(1); // the echo
  const p = ca.send(b, "lost echo");
  await waitFor(cb, () => got.order.length === 1, "stored and delivered to bob");
  await waitFor(ca, () => ca._dropIncoming === 0, "alice's echo arrived (and was dropped)");
  ca.dropConnection();
  const r = await p;
  assert.equal(r.id, got.order[0].id);
  assert.equal(r.seq, 1);
  const stored = await api("GET", `/v1/conversations/${directConv(a, b)}/messages?after_seq=0&user_id=${a}`);
  assert.equal(stored.length, 1, "stored once");
});

test("the token is renewed before exp and the client stays connected", { skip }, async () => {
  const a = uid("alice"), b = uid("bob");
  await user(b);
  const short = await user(a, { ttl: 4 });
  const exp = decodeToken(short).exp * 1000;
  const ca = await connect(a, short);
  let renewed = null, drops = 0;
  ca.on("token", (t) => { renewed = t; });
  ca.on("status", ({ connected }) => { if (!connected) drops++; });
  await waitFor(ca, () => renewed !== null && ca.connected, "renewal", 10000);
  assert.notEqual(ca.token, short);
  assert.ok(renewed.expires_at > exp);
  // Past the first token's exp the connection (on the new token) still serves.
  await new Promise((r) => setTimeout(r, Math.max(0, exp - Date.now()) + 1500));
  await waitFor(ca, () => ca.connected, "connected");
  // One move to the new token, before exp; none by the server at the old token's exp.
  assert.equal(drops, 1, "connections ended");
  const r = await ca.send(b, "still here");
  assert.equal(r.seq, 1);
  // The token is in no enumerable field, so no dump of the client shows it.
  assert.ok(!Object.values(ca).includes(ca.token) && !Object.keys(ca).includes("_token"), "the token is not enumerable");
});

test("the token is renewed over im/rpc without HTTP, and by an app callback", { skip }, async () => {
  const a = uid("alice");
  const ca = await connect(a, await user(a, { ttl: 3 }), { httpUrl: "" });
  const first = ca.token;
  await waitFor(ca, () => ca.token !== first && ca.connected, "rpc renewal", 10000);
  const b = uid("bob");
  let calls = 0;
  const cb = await connect(b, await user(b, { ttl: 3 }), {
    renewToken: async () => { calls++; return (await api("POST", `/v1/users/${b}/tokens`, {})).token; },
  });
  await waitFor(cb, () => calls === 1 && cb.connected, "callback renewal", 10000);
});

test("refusals reject the send with the contract's code (MQTT 5 and 3.1.1)", { skip }, async () => {
  const a = uid("alice"), c = uid("carol"), g = uid("grp");
  const ta = await user(a);
  await user(c);
  await api("POST", "/v1/groups", { id: g, name: "Not alice's", owner: c });
  for (const protocolVersion of [5, 4]) {
    const ca = await connect(a, ta, { protocolVersion });
    await assert.rejects(ca.send({ group: g }, "let me in"), (e) => e instanceof MqimError && e.code === "not_member");
    await assert.rejects(ca.send(c, { type: "text", body: { text: "" } }), (e) => e instanceof MqimError && e.code === "invalid");
    await ca.disconnect();
  }
  await assert.rejects(login(HTTP, a, "wrong"), (e) => e instanceof MqimError && e.code === "unauthorized");
  // A password change ends the user's sessions (MQTT 5 DISCONNECT 0x98): the client stops and says why.
  const cc = await connect(c, await user(c));
  const errors = [];
  cc.on("error", (e) => errors.push(e.code));
  await api("PUT", "/v1/users/" + c, { name: c, password: "new-password-1" });
  await waitFor(cc, () => errors.includes("unauthorized") && !cc.connected, "the session ended");
  const bad = new MqimClient({ wsUrl: WS, httpUrl: HTTP, userId: a, token: "not-a-token", deviceId: "bad" });
  await assert.rejects(bad.connect(), (e) => e instanceof MqimError && e.code === "unauthorized");
  assert.equal(bad.connected, false);
});

test("login, recall and edit, typing, groups", { skip }, async () => {
  const a = uid("alice"), b = uid("bob");
  await user(a, { password: "secret-pass-1" });
  const tb = await user(b);
  const { token } = await login(HTTP, a, "secret-pass-1");
  const ca = await connect(a, token), cb = await connect(b, tb);
  const conv = directConv(a, b);
  const events = [];
  for (const k of ["recall", "edit", "typing"]) cb.on(k, (e) => events.push(e.kind));
  const m = await ca.send(b, "typo");
  await ca.edit(m.id, "fixed");
  await ca.recall(m.id);
  ca.typing(conv);
  await waitFor(cb, () => ["edit", "recall", "typing"].every((k) => events.includes(k)), "recall, edit, typing");
  assert.equal(cb.conversations.get(conv).last_seq, 3);

  const g = uid("team");
  await ca.createGroup({ id: g, name: "Team" });
  await ca.addMembers(g, [b]);
  await waitFor(cb, () => cb.conversations.has("g:" + g), "bob's list has the group");
  const r = await cb.send({ group: g }, "hi team");
  assert.ok(r.seq > 1);
  const members = await ca.members(g);
  assert.equal(members.length, 2);
  const pres = await ca.presence([b]);
  assert.equal(pres[b].online, true);
  const friendEvents = [];
  ca.on("friend", (f) => friendEvents.push(f.event));
  cb.on("friend", (f) => friendEvents.push("bob:" + f.event));
  await ca.requestFriend(b, "hi");
  await waitFor(cb, () => friendEvents.includes("bob:request"), "bob's friend request event");
  await cb.answerFriend(a, true);
  await waitFor(ca, () => friendEvents.includes("accepted"), "alice's accepted event");
  assert.deepEqual((await ca.friends()).map((f) => f.user_id || f.id || f), [b]);
  const polled = [];
  ca.on("presence", (p) => polled.push(p));
  const stop = ca.watchPresence([b], 100);
  await waitFor(ca, () => polled.length >= 2, "two presence polls");
  stop();
  assert.equal(polled[0][b].online, true);
});

test("the vendored browser build is the npm package's", { skip: existsSync(new URL("../node_modules/mqtt/dist/mqtt.esm.js", import.meta.url)) ? false : "no node_modules" }, () => {
  const vendored = readFileSync(fileURLToPath(new URL("../../web/vendor/mqtt.esm.js", import.meta.url)));
  const pkg = readFileSync(fileURLToPath(new URL("../node_modules/mqtt/dist/mqtt.esm.js", import.meta.url)));
  assert.ok(vendored.equals(pkg), "clients/web/vendor/mqtt.esm.js differs from node_modules/mqtt: copy it again (docs/clients.md)");
  const version = JSON.parse(readFileSync(fileURLToPath(new URL("../node_modules/mqtt/package.json", import.meta.url)))).version;
  assert.match(readFileSync(fileURLToPath(new URL("../../web/vendor/README.md", import.meta.url)), "utf8"), new RegExp("mqtt " + version.replace(/\./g, "\\.")));
});

test("a new conversation's first live event during the reconnect's sync does not hide what came before it", { skip }, async () => {
  const a = uid("alice"), b = uid("bob");
  const ca = await connect(a, await user(a)), cb = await connect(b, await user(b));
  const got = record(cb);
  await cb.disconnect();
  const missed = [];
  for (let i = 0; i < 2; i++) missed.push((await ca.send(b, "while away " + i)).id); // a conversation new to bob
  // Hold bob's list request until a live message of that conversation has
  // been applied: the race of a live event beating the reconnect's list.
  let release;
  const held = new Promise((r) => { release = r; });
  const call = cb._call.bind(cb);
  cb._call = async (method, ...rest) => {
    if (method === "conversations") await held;
    return call(method, ...rest);
  };
  const connecting = cb.connect();
  await waitFor(cb, () => cb.connected, "bob connected");
  const live = await ca.send(b, "live");
  await waitFor(cb, () => got.seen.has(live.id), "the live message");
  release();
  await connecting;
  for (const id of missed) await waitFor(cb, () => got.seen.has(id), "caught up " + id);
  assert.deepEqual(got.order.map((m) => m.seq).sort((x, y) => x - y), [1, 2, 3]);
  assert.equal(cb.conversations.get(directConv(a, b)).unread, 3);
});

test("a renewal that ends after disconnect() arms no refresh timer", { skip }, async () => {
  const a = uid("alice");
  let release;
  const held = new Promise((r) => { release = r; });
  const ca = await connect(a, await user(a), {
    renewToken: async () => { await held; return (await api("POST", `/v1/users/${a}/tokens`, {})).token; },
  });
  const renewing = ca.refreshToken();
  await ca.disconnect();
  const before = ca._refreshTimer;
  release();
  await renewing;
  // A new timer would keep a Node process alive (and renew) for a client that is closed.
  assert.equal(ca._refreshTimer, before, "no timer armed after disconnect");
  assert.equal(ca.connected, false);
});

test("a request whose connection broke fails at once, not at the timeout (im/rpc)", { skip }, async () => {
  const a = uid("alice");
  const ca = await connect(a, await user(a), { httpUrl: "", sendTimeout: 60000 });
  // The reply is lost with the connection: drop it, then break the socket.
  const onReply = ca._onReply.bind(ca);
  let dropped = false;
  ca._onReply = (ev) => {
    if (!dropped) { dropped = true; ca.dropConnection(); return; }
    onReply(ev);
  };
  await assert.rejects(ca.request("unread", {}), (e) => e instanceof MqimError && e.code === "unavailable",
    "rejected as unavailable by the connection's loss (not \"timeout\" after sendTimeout)");
  ca._onReply = onReply;
  await waitFor(ca, () => ca.connected, "reconnected");
  await ca.request("unread", {});
});

test("a token renewal that fails is retried before exp (im/rpc: it cannot renew once disconnected)", { skip }, async () => {
  const a = uid("alice");
  const ca = await connect(a, await user(a, { ttl: 4 }), { httpUrl: "" });
  const first = ca.token;
  const renew = ca._renew.bind(ca);
  let calls = 0;
  ca._renew = () => (++calls === 1 ? Promise.reject(new MqimError("unavailable", "a transient failure")) : renew());
  await waitFor(ca, () => calls >= 2 && ca.token !== first && ca.connected, "the retried renewal", 10000);
  ca._renew = renew;
});
