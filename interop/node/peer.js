// A peer for the bench (scripts/lib/targets.sh, target "node"): the part of
// the Users WebSocket API (docs/PROTOCOL.md) the load tests use, written
// the way a Node service on the ws package usually is, so the broker can be
// compared with it (issue #20):
//   - the upgrade, on any path, admits a client with an approved Origin
//     (regular expressions matched as JavaScript's String.match does) or a
//     backend with the key in a Users-Api-Key header (treated like a
//     client here), and answers 403 / 401 otherwise;
//   - POST /api/events on the admin listener (Authorization: Bearer KEY)
//     takes one event or an array, all validated (objects, eventType 1-9)
//     before any is sent, answers 202 {"accepted":n}, and fans each event
//     out with ws's broadcast loop (wss.clients, send to each open one);
//     /healthz answers {"status":"ok"};
//   - a client's eventType 10 is echoed to it, or broadcast when it has
//     "broadcast": true; anything else gets an error event; binary frames
//     are closed with 1003, messages over 64 KiB with 1009 (ws maxPayload).
// Events go out as the bytes that were published: the bench's events carry
// nanosecond timestamps that JSON.parse would round, so requests are
// parsed only to validate them and the array is split as text.
// permessage-deflate is off unless --deflate (then with no context
// takeover, as the broker negotiates it; ws compresses per connection).
// There is no slow-consumer limit: ws queues what a socket cannot take.
//
// Usage: node peer.js [--port 8080] [--host 127.0.0.1] [--admin 127.0.0.1:8081]
//                     [--key change-me] [--origins localhost,RE...] [--deflate]
// SIGTERM or SIGINT closes every client with 1001 and exits.
"use strict";
const http = require("http");
const crypto = require("crypto");
const { parseArgs } = require("util");
const WebSocket = require("ws");

const { values: opt } = parseArgs({
  options: {
    port: { type: "string", default: "8080" },
    host: { type: "string", default: "127.0.0.1" },
    admin: { type: "string", default: "127.0.0.1:8081" },
    key: { type: "string", default: "change-me" },
    origins: { type: "string", default: "localhost" },
    deflate: { type: "boolean", default: false },
  },
});

const maxMessage = 64 << 10;
const maxPublishBody = 16 << 20;
const origins = opt.origins.split(",").map(p => p.trim()).filter(Boolean).map(p => new RegExp(p));
const key = Buffer.from(opt.key);

const originOK = o => !!o && origins.some(re => re.test(o));
const keyOK = k => key.length > 0 && typeof k === "string" && Buffer.byteLength(k) === key.length &&
  crypto.timingSafeEqual(Buffer.from(k), key);

const wss = new WebSocket.Server({
  noServer: true,
  maxPayload: maxMessage,
  perMessageDeflate: opt.deflate ? { serverNoContextTakeover: true, clientNoContextTakeover: true, threshold: 256 } : false,
});

// broadcast is ws's fan-out, as its README shows it.
function broadcast(data) {
  for (const c of wss.clients) {
    if (c.readyState === WebSocket.OPEN) c.send(data, { binary: false });
  }
}

const refuse = (socket, status, reason) => {
  socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: text/plain\r\n` +
    `Content-Length: ${Buffer.byteLength(reason) + 1}\r\nConnection: close\r\n\r\n${reason}\n`);
};

const server = http.createServer((req, res) => {
  res.writeHead(426, { "Content-Type": "text/plain" });
  res.end("upgrade required\n");
});
server.on("upgrade", (req, socket, head) => {
  socket.on("error", () => {});
  const k = req.headers["users-api-key"];
  if (k !== undefined && !keyOK(k)) return refuse(socket, 401, "invalid api key");
  if (k === undefined && !originOK(req.headers.origin)) return refuse(socket, 403, "origin not allowed");
  wss.handleUpgrade(req, socket, head, ws => wss.emit("connection", ws, req));
});

const errorEvent = (eventType, error) => JSON.stringify({ eventType, error });

wss.on("connection", ws => {
  ws.on("error", () => {});
  ws.on("message", (data, isBinary) => {
    if (isBinary) return ws.close(1003, "binary frames are not supported");
    let ev;
    try {
      ev = JSON.parse(data);
    } catch {
      return ws.send(errorEvent(0, "invalid JSON"));
    }
    if (ev === null || typeof ev !== "object" || Array.isArray(ev)) return ws.send(errorEvent(0, "event must be a JSON object"));
    if (!Number.isInteger(ev.eventType)) return ws.send(errorEvent(0, "eventType must be an integer"));
    if (ev.eventType !== 10) return ws.send(errorEvent(ev.eventType, `eventType ${ev.eventType} may not be sent on this connection`));
    if (ev.broadcast === true) broadcast(data);
    else ws.send(data, { binary: false });
  });
});

// splitArray returns the elements of s, a valid JSON array, as their text.
function splitArray(s) {
  const out = [];
  let depth = 0, inStr = false, esc = false, start = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (inStr) {
      if (esc) esc = false;
      else if (ch === "\\") esc = true;
      else if (ch === '"') inStr = false;
      continue;
    }
    switch (ch) {
      case '"': inStr = true; break;
      case "[": case "{": if (depth++ === 0) start = i + 1; break;
      case "]": case "}":
        if (--depth === 0) {
          const e = s.slice(start, i).trim();
          if (e) out.push(e);
        }
        break;
      case ",":
        if (depth === 1) { out.push(s.slice(start, i).trim()); start = i + 1; }
        break;
    }
  }
  return out;
}

// splitEvents validates a publish body and returns its events as Buffers
// of their published bytes, or throws an Error for the 400.
function splitEvents(text) {
  text = text.trim();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`invalid JSON: ${e.message}`);
  }
  const isArray = Array.isArray(parsed);
  const evs = isArray ? parsed : [parsed];
  evs.forEach((ev, i) => {
    if (ev === null || typeof ev !== "object" || Array.isArray(ev)) throw new Error(`event ${i}: event must be a JSON object`);
    if (!Number.isInteger(ev.eventType)) throw new Error(`event ${i}: eventType must be an integer`);
    if (ev.eventType < 1 || ev.eventType > 9) throw new Error(`event ${i}: eventType ${ev.eventType} cannot be published`);
  });
  return (isArray ? splitArray(text) : [text]).map(e => Buffer.from(e));
}

const reply = (res, status, body) => {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(body) + "\n");
};

const admin = http.createServer((req, res) => {
  const path = req.url.split("?")[0];
  if (path === "/healthz") return reply(res, 200, { status: "ok" });
  if (path !== "/api/events") return reply(res, 404, { error: "not found" });
  if (req.method !== "POST") {
    res.setHeader("Allow", "POST");
    return reply(res, 405, { error: "method not allowed" });
  }
  const auth = req.headers.authorization || "";
  if (!auth.startsWith("Bearer ") || !keyOK(auth.slice(7))) return reply(res, 401, { error: "unauthorized" });
  const chunks = [];
  let size = 0;
  req.on("data", c => {
    size += c.length;
    if (size <= maxPublishBody) chunks.push(c);
  });
  req.on("end", () => {
    if (size > maxPublishBody) return reply(res, 413, { error: "body too large" });
    let events;
    try {
      events = splitEvents(Buffer.concat(chunks).toString());
    } catch (e) {
      return reply(res, 400, { error: e.message });
    }
    for (const ev of events) broadcast(ev);
    reply(res, 202, { accepted: events.length });
  });
});

const [adminHost, adminPort] = (() => {
  const i = opt.admin.lastIndexOf(":");
  return [opt.admin.slice(0, i) || "127.0.0.1", Number(opt.admin.slice(i + 1))];
})();
let listening = 0;
const ready = () => {
  if (++listening === 2) {
    process.stderr.write(`node peer: listening on ${opt.host}:${opt.port}, admin on ${opt.admin}, ws ${require("ws/package.json").version}, deflate ${opt.deflate}\n`);
  }
};
server.listen(Number(opt.port), opt.host, ready);
admin.listen(adminPort, adminHost, ready);

const stop = () => {
  for (const c of wss.clients) c.close(1001, "server shutdown");
  server.close();
  admin.close();
  setTimeout(() => process.exit(0), 200); // time for the close frames
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
