// The client from docs/PROTOCOL.md, on the ws package, with each event it
// sees written to stdout as one JSON line so that interop/node_test.go can
// check it. Each line read from stdin is sent as a message; the end of stdin
// closes the connection (code 1000).
//
// Usage: node client.js URL [ORIGIN]   (no ORIGIN: the request has none)
"use strict";
const WebSocket = require("ws");
const readline = require("readline");

const [url, origin] = process.argv.slice(2);
const out = (o, then) => process.stdout.write(JSON.stringify(o) + "\n", then);

// As in docs/PROTOCOL.md, with the Origin as a parameter:
const ws = new WebSocket(url, origin ? { headers: { origin } } : {});
ws.on("message", d => { const e = JSON.parse(d); out({ event: "message", eventType: e.eventType, data: d.toString() }); });
ws.on("open", () => { out({ event: "open" }); ws.send(JSON.stringify({ eventType: 10, message: "Hello world?" })); });

// A refused handshake: report the status and stop.
ws.on("unexpected-response", (req, res) => {
  res.resume();
  out({ event: "refused", status: res.statusCode }, () => process.exit(0));
});
ws.on("error", err => out({ event: "error", message: err.message }));
ws.on("close", code => out({ event: "close", code }, () => process.exit(0)));

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", l => ws.send(l));
lines.on("close", () => {
  if (ws.readyState === WebSocket.OPEN) ws.close(1000);
  else process.exit(0);
});
