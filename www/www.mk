# Browser runtime targets (TypeScript package, static server, browser tests).
# Included from the top-level Makefile: `include www/www.mk`.
.PHONY: www test-browser serve-www bench-store

## www: the TypeScript package (www/dist: ES modules + .d.ts); npm ci when the lock file changed.
www/node_modules/.package-lock.json: www/package.json www/package-lock.json
	cd www && npm ci --no-audit --no-fund
www: www/node_modules/.package-lock.json
	cd www && npm run build

## test-browser: headless Chromium (Debian's, via playwright-core) against www/server.mjs.
## Store/server/SHA-256 tests need only `make www`; the engine tests need `make wasm` and `make models`.
test-browser: www wasm models
	node --test --test-concurrency=1 tests/browser/

## serve-www: the static server on 127.0.0.1:8080 (www/ at /, models/cache/ at /models/).
serve-www: www
	node www/server.mjs --port 8080

## bench-store: Cache API vs OPFS write/read throughput in Chromium (docs/store-decision.md).
bench-store: www
	node tests/browser/bench_store.mjs
