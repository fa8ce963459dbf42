// A webhook receiver for webhook/interop_test.go: it verifies every
// delivery with the official Standard Webhooks verifier (npm
// standardwebhooks), answers 204 when the signature holds and 400 when it
// does not, and prints one JSON line per request on stdout. It prints
// {"port": N} first; the endpoint's secret arrives on stdin (one line;
// a later line replaces it), acknowledged with {"secretSet": true}.
import http from "node:http";
import readline from "node:readline";
import { Webhook } from "standardwebhooks";

let secret = null;
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  secret = line.trim();
  process.stdout.write(JSON.stringify({ secretSet: true }) + "\n");
});

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    const out = { id: req.headers["webhook-id"] ?? "", signature: req.headers["webhook-signature"] ?? "" };
    try {
      if (!secret) throw new Error("no secret yet");
      const payload = new Webhook(secret).verify(body, req.headers);
      out.ok = true;
      out.eventId = payload.eventId;
      out.eventType = payload.eventType;
      res.writeHead(204).end();
    } catch (e) {
      out.ok = false;
      out.error = String(e && e.message ? e.message : e);
      res.writeHead(400, { "content-type": "text/plain" }).end(out.error);
    }
    process.stdout.write(JSON.stringify(out) + "\n");
  });
});
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + "\n");
});
