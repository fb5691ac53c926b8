// Set-up of the consumer tests: pack www/ (npm pack), copy each consumer project into a work
// directory under .cache/ (ignored), install its pinned bundler from the committed lock file once
// (again only when the lock changes), install the packed tarball, build, and serve.
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { REPO } from "../browser/harness.mjs";
import { MIME } from "../../www/server.mjs";

export const HERE = path.dirname(fileURLToPath(import.meta.url));
/** One work directory per checkout (.cache/ may be shared between checkouts of one machine). */
export const WORK = path.join(REPO, ".cache", "consumers", createHash("sha1").update(REPO).digest("hex").slice(0, 8));

function npm(args, cwd) {
  return execFileSync("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** `npm pack` of www/ into WORK; returns {file, bytes, unpackedBytes, entries}. */
export function packPackage() {
  for (const f of ["dist/index.js", "dist/worker.js", "pkg/hearth_bg.wasm", "pkg-mt/hearth_bg.wasm"]) {
    if (!fs.existsSync(path.join(REPO, "www", f))) throw new Error(`www/${f} is missing: run make wasm www`);
  }
  fs.mkdirSync(WORK, { recursive: true });
  const [info] = JSON.parse(npm(["pack", "--json", "--pack-destination", WORK], path.join(REPO, "www")));
  return { file: path.join(WORK, info.filename), bytes: info.size, unpackedBytes: info.unpackedSize, entries: info.files.map((f) => f.path) };
}

/**
 * Copies tests/consumers/<name> (and app.js as src/main.js) into WORK/<name>, runs `npm ci` when
 * its lock file changed since the last install, then installs the tarball (not saved).
 */
export function prepareProject(name, tarball) {
  const src = path.join(HERE, name);
  const dir = path.join(WORK, name);
  fs.mkdirSync(path.join(dir, "src"), { recursive: true });
  for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  fs.copyFileSync(path.join(HERE, "app.js"), path.join(dir, name === "plain" ? "main.js" : "src/main.js"));
  if (fs.existsSync(path.join(src, "package-lock.json"))) {
    const lockSha = createHash("sha256").update(fs.readFileSync(path.join(src, "package-lock.json"))).digest("hex");
    const stamp = path.join(dir, "node_modules", ".hearth-lock-sha256");
    if (!fs.existsSync(stamp) || fs.readFileSync(stamp, "utf8") !== lockSha) {
      npm(["ci", "--prefer-offline"], dir);
      fs.writeFileSync(stamp, lockSha);
    }
    npm(["install", "--no-save", "--prefer-offline", tarball], dir);
  } else {
    // No bundler: the tarball's contents, as a static host would serve them.
    const pkgDir = path.join(dir, "package");
    fs.rmSync(pkgDir, { recursive: true, force: true });
    execFileSync("tar", ["-xzf", tarball, "-C", dir]);
  }
  return dir;
}

/** Runs a project's script (`node <file> args…`) in its directory; returns stdout + stderr, throws with them on failure. */
export function runNode(dir, args, env = {}) {
  const r = spawnSync(process.execPath, args, { cwd: dir, encoding: "utf8", env: { ...process.env, ...env } });
  const out = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  if (r.status !== 0) throw new Error(`node ${args.join(" ")} in ${dir} failed (${r.status ?? r.signal}):\n${out}`);
  return out;
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * A static server for `dir` (what a deployed app or a CDN is): `isolate` adds COOP/COEP,
 * `cors` adds `Access-Control-Allow-Origin: *` and `Cross-Origin-Resource-Policy: cross-origin`.
 * `rewrite(relPath, buf)` may change a file's body. Resolves to {url, close()}.
 */
export function serveDir(dir, { isolate = false, cors = false, rewrite } = {}) {
  const root = path.resolve(dir);
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url, "http://x").pathname).replace(/\/$/, "/index.html");
    const file = path.resolve(root, "." + rel);
    const headers = { "Cache-Control": "no-cache" };
    if (isolate) Object.assign(headers, { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" });
    if (cors) Object.assign(headers, { "Access-Control-Allow-Origin": "*", "Cross-Origin-Resource-Policy": "cross-origin" });
    if (!file.startsWith(root + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, headers);
      return res.end("not found");
    }
    let body = fs.readFileSync(file);
    if (rewrite) body = rewrite(path.relative(root, file), body);
    res.writeHead(200, { ...headers, "Content-Type": MIME[path.extname(file)] ?? "application/octet-stream", "Content-Length": body.length });
    res.end(req.method === "HEAD" ? undefined : body);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        url: `http://127.0.0.1:${server.address().port}/`,
        close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
      }),
    ),
  );
}

/**
 * Starts `node <args>` in `dir` (a dev server) and resolves once `url` answers; `stop()` ends it.
 */
export async function startProcess(dir, args, url, env = {}) {
  const child = spawn(process.execPath, args, { cwd: dir, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const stop = () => new Promise((r) => { if (child.exitCode !== null) return r(); child.once("exit", () => r()); child.kill("SIGTERM"); });
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`node ${args.join(" ")} exited (${child.exitCode}):\n${out}`);
    try {
      const r = await fetch(url);
      if (r.ok) return { stop, output: () => out };
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new Error(`node ${args.join(" ")} did not answer at ${url}:\n${out}`);
}
