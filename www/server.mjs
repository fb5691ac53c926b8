#!/usr/bin/env node
// Hearth's static server: the one the browser tests and `make demo` use. No dependencies.
//
//   node www/server.mjs [--port N] [--host 127.0.0.1] [--isolate] [--csp POLICY] [--throttle BYTES_PER_SEC] [--test-hooks]
//
// Serves the repository's `www/` at `/` and `models/cache/` at `/models/`, with correct MIME
// types, HEAD, HTTP Range (206 + Content-Range, 416 for unsatisfiable ranges), ETag and
// Last-Modified (If-None-Match / If-Modified-Since → 304, If-Range honoured).
// `--isolate` adds COOP/COEP so pages are cross-origin isolated (wasm threads).
// `--csp POLICY` sends `Content-Security-Policy: POLICY` with every response (strict-CSP tests).
// Model files (`/models/`) carry CORS headers (`Access-Control-Allow-Origin: *`, preflight for
// `Range`/`If-Range`), so a browser extension can download the weights without host permissions.
// `--throttle` caps each response body at that many bytes per second.
// `--test-hooks` enables fault injection and counters, and only then:
//   any file URL + `?fail_after=BYTES`  → the connection is destroyed after BYTES body bytes;
//   any file URL + `?delay_ms=MS`       → the body starts after MS milliseconds;
//   GET /__test__/stats                  → JSON {requests, bytes: {path: bodyBytesSent}, log: [...]};
//   POST /__test__/reset                 → zeroes the counters;
//   GET /__test__/blank.html             → an empty page on this origin.
// With `testHooks`, the returned object's `stalls` (a Map from URL path to a byte count) makes
// every response for that path stop sending after that many body bytes while keeping the
// connection open: a download that hangs mid-way, so a test can interrupt it deterministically.
// `cuts` (the same kind of Map) closes the connection after that many body bytes of the file,
// like `?fail_after=` but without changing the URL (so a retry of the same URL can resume).
// `signatures` (a Map from URL path to a string) answers 403 to a request for that path whose
// `sig` query parameter is not that string: a signed URL, each file with its own signature.
// Prints `Hearth server: http://HOST:PORT/` (one line) once listening.

import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, "..");

export const MIME = {
  ".html": "text/html; charset=utf-8",
  ".htm": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".webmanifest": "application/manifest+json; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
  ".md": "text/markdown; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".wasm": "application/wasm",
  ".gguf": "application/octet-stream",
  ".bin": "application/octet-stream",
  ".ts": "text/plain; charset=utf-8",
};

/** CORS for model files: public weights, readable (with their validators) from any origin. */
const MODEL_CORS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Expose-Headers": "Content-Length, Content-Range, Accept-Ranges, ETag, Last-Modified",
};
/** Parses a single `bytes=` range against `size`; returns {start, end} (inclusive), null when
 *  absent or not a single byte range (serve the whole file), or "unsatisfiable". */
export function parseRange(header, size) {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return null; // multi-range or other units: RFC 9110 lets us ignore it
  let start, end;
  if (m[1] === "" && m[2] === "") return "unsatisfiable";
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return "unsatisfiable";
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== "" && Number(m[2]) < start) return "unsatisfiable";
  }
  if (start >= size || size === 0) return "unsatisfiable";
  return { start, end };
}

/** Starts the server; resolves to {server, url, stats, close()}. */
export function startServer({ port = 0, host = "127.0.0.1", isolate = false, csp = "", throttle = 0, testHooks = false, roots } = {}) {
  const mounts = roots ?? [
    ["/models/", path.join(REPO, "models", "cache")],
    ["/", HERE],
  ];
  const stats = { requests: 0, bytes: {}, log: [] };
  const stalls = new Map();
  const cuts = new Map();
  const signatures = new Map();

  function resolveFile(urlPath) {
    let decoded;
    try {
      decoded = decodeURIComponent(urlPath);
    } catch {
      return null;
    }
    if (decoded.includes("\0")) return null;
    for (const [prefix, dir] of mounts) {
      if (!decoded.startsWith(prefix)) continue;
      const rel = decoded.slice(prefix.length);
      const full = path.resolve(dir, "." + path.posix.sep + rel);
      if (full !== dir && !full.startsWith(dir + path.sep)) return null; // no escaping the mount
      return full;
    }
    return null;
  }

  function commonHeaders() {
    const h = { "Accept-Ranges": "bytes", "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff" };
    if (isolate) {
      h["Cross-Origin-Opener-Policy"] = "same-origin";
      h["Cross-Origin-Embedder-Policy"] = "require-corp";
      h["Cross-Origin-Resource-Policy"] = "same-origin";
    }
    if (csp) h["Content-Security-Policy"] = csp;
    return h;
  }

  function send(res, status, body, type = "text/plain; charset=utf-8", extra = {}) {
    const buf = Buffer.from(body);
    res.writeHead(status, { ...commonHeaders(), "Content-Type": type, "Content-Length": buf.length, ...extra });
    res.end(res.req.method === "HEAD" ? undefined : buf);
  }

  const server = http.createServer((req, res) => {
    stats.requests++;
    const url = new URL(req.url, "http://x");
    stats.log.push({ method: req.method, path: url.pathname, search: url.search, range: req.headers.range ?? null });
    if (stats.log.length > 1000) stats.log.shift();

    if (testHooks && url.pathname.startsWith("/__test__/")) {
      if (url.pathname === "/__test__/stats") return send(res, 200, JSON.stringify(stats), MIME[".json"]);
      if (url.pathname === "/__test__/reset" && req.method === "POST") {
        stats.requests = 0;
        stats.bytes = {};
        stats.log = [];
        return send(res, 204, "");
      }
      if (url.pathname === "/__test__/blank.html") return send(res, 200, "<!doctype html><title>hearth test</title>", MIME[".html"]);
      return send(res, 404, "no such test hook");
    }
    const cors = url.pathname.startsWith("/models/") ? MODEL_CORS : {};
    if (req.method === "OPTIONS" && url.pathname.startsWith("/models/")) {
      res.writeHead(204, { ...commonHeaders(), ...cors, "Access-Control-Allow-Methods": "GET, HEAD", "Access-Control-Allow-Headers": "Range, If-Range", "Access-Control-Max-Age": "600" });
      return res.end();
    }
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "method not allowed", undefined, { Allow: "GET, HEAD" });
    if (testHooks && signatures.has(url.pathname) && url.searchParams.get("sig") !== signatures.get(url.pathname)) return send(res, 403, "bad signature");

    let file = resolveFile(url.pathname);
    if (!file) return send(res, 404, "not found");
    let st;
    try {
      st = fs.statSync(file);
      if (st.isDirectory()) {
        file = path.join(file, "index.html");
        st = fs.statSync(file);
      }
    } catch {
      return send(res, 404, "not found");
    }
    const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
    const lastModified = st.mtime.toUTCString();
    const type = MIME[path.extname(file).toLowerCase()] ?? "application/octet-stream";
    const headers = { ...commonHeaders(), ...cors, "Content-Type": type, ETag: etag, "Last-Modified": lastModified };

    const inm = req.headers["if-none-match"];
    const ims = req.headers["if-modified-since"];
    if ((inm && inm === etag) || (!inm && ims && Date.parse(ims) >= Math.floor(st.mtimeMs / 1000) * 1000)) {
      res.writeHead(304, headers);
      return res.end();
    }

    let range = parseRange(req.headers.range, st.size);
    const ifRange = req.headers["if-range"];
    if (range && ifRange && ifRange !== etag && ifRange !== lastModified) range = null; // changed: whole file
    if (range === "unsatisfiable") {
      res.writeHead(416, { ...headers, "Content-Range": `bytes */${st.size}`, "Content-Length": 0 });
      return res.end();
    }
    let start = 0;
    let end = st.size - 1;
    let status = 200;
    if (range) {
      ({ start, end } = range);
      status = 206;
      headers["Content-Range"] = `bytes ${start}-${end}/${st.size}`;
    }
    const length = st.size === 0 ? 0 : end - start + 1;
    headers["Content-Length"] = length;
    res.writeHead(status, headers);
    if (req.method === "HEAD" || length === 0) return res.end();

    let failAfter = testHooks && url.searchParams.has("fail_after") ? Number(url.searchParams.get("fail_after")) : Infinity;
    if (testHooks && cuts.has(url.pathname)) failAfter = Math.min(failAfter, Math.max(0, cuts.get(url.pathname) - start));
    const stallAfter = testHooks && stalls.has(url.pathname) ? Math.max(0, stalls.get(url.pathname) - start) : Infinity;
    const delayMs = testHooks && url.searchParams.has("delay_ms") ? Number(url.searchParams.get("delay_ms")) : 0;
    const key = url.pathname;
    stats.bytes[key] ??= 0;
    let sent = 0;

    const begin = () => {
      const hwm = throttle > 0 ? Math.max(1024, Math.min(65536, Math.floor(throttle / 20))) : 256 * 1024;
      const stream = fs.createReadStream(file, { start, end, highWaterMark: hwm });
      const tStart = Date.now();
      stream.on("data", (chunk) => {
        if (res.destroyed) return stream.destroy();
        let piece = chunk;
        const cut = Math.min(failAfter, stallAfter);
        if (sent + piece.length > cut) piece = piece.subarray(0, Math.max(0, cut - sent));
        sent += piece.length;
        stats.bytes[key] += piece.length;
        const ok = res.write(piece);
        if (sent >= stallAfter) {
          stream.destroy(); // hang: no more bytes, the connection stays open until the client goes
          return;
        }
        if (sent >= failAfter) {
          stream.destroy();
          // Close the connection (FIN after the bytes written so far) short of Content-Length:
          // the client sees the body end early, as when a network drops mid-download.
          res.socket?.end();
          return;
        }
        if (!ok) {
          stream.pause();
          res.once("drain", () => stream.resume());
        }
        if (throttle > 0) {
          const due = tStart + (sent / throttle) * 1000;
          const wait = due - Date.now();
          if (wait > 0) {
            stream.pause();
            setTimeout(() => stream.resume(), wait);
          }
        }
      });
      stream.on("end", () => res.end());
      stream.on("error", () => res.destroy());
      res.on("close", () => stream.destroy());
    };
    if (delayMs > 0) setTimeout(begin, delayMs);
    else begin();
  });

  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const addr = server.address();
      const url = `http://${host}:${addr.port}/`;
      resolve({ server, url, stats, stalls, cuts, signatures, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }) });
    });
  });
}

function parseArgs(argv) {
  const o = { port: 8080, host: "127.0.0.1", isolate: false, csp: "", throttle: 0, testHooks: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--port") o.port = Number(argv[++i]);
    else if (a === "--host") o.host = argv[++i];
    else if (a === "--isolate") o.isolate = true;
    else if (a === "--csp") o.csp = argv[++i];
    else if (a === "--throttle") o.throttle = Number(argv[++i]);
    else if (a === "--test-hooks") o.testHooks = true;
    else if (a === "--help" || a === "-h") {
      console.log("usage: node www/server.mjs [--port N] [--host H] [--isolate] [--csp POLICY] [--throttle BYTES_PER_SEC] [--test-hooks]");
      process.exit(0);
    } else {
      console.error(`unknown argument: ${a}`);
      process.exit(2);
    }
  }
  return o;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const opts = parseArgs(process.argv.slice(2));
  const { url } = await startServer(opts);
  console.log(`Hearth server: ${url}${opts.isolate ? " (cross-origin isolated)" : ""}`);
}
