# Browser runtime targets (TypeScript package, static server, browser tests).
# Included from the top-level Makefile: `include www/www.mk`.
.PHONY: www extension test-browser test-consumers serve-www bench-store native-bin

## www: the TypeScript package (www/dist: ES modules + .d.ts); npm ci when the lock file changed;
## the demo's Markdown parser (marked, from www/node_modules) vendored into www/demo/vendor/.
www/node_modules/.package-lock.json: www/package.json www/package-lock.json
	cd www && npm ci --no-audit --no-fund
www: www/node_modules/.package-lock.json
	cd www && npm run build
	mkdir -p www/demo/vendor
	cp www/node_modules/marked/lib/marked.esm.js www/demo/vendor/

## extension: copies the package, the wasm engine, the Markdown renderer (with the demo's vendored
## libraries) and Mozilla's Readability (injected into the page to find its article) into
## www/extension/hearth/ (an MV3 extension page may load only the extension's own files).
## Then load www/extension/ unpacked (chrome://extensions → Developer mode → Load unpacked).
extension: www
	@test -f www/pkg/hearth_bg.wasm || { echo "www/pkg is missing: run make wasm"; exit 1; }
	rm -rf www/extension/hearth
	mkdir -p www/extension/hearth/dist/vendor www/extension/hearth/pkg www/extension/hearth/vendor
	cp www/dist/*.js www/extension/hearth/dist/
	cp www/dist/vendor/*.js www/extension/hearth/dist/vendor/
	cp www/pkg/hearth.js www/pkg/hearth_bg.wasm www/extension/hearth/pkg/
	cp www/demo/render.js www/extension/hearth/
	cp www/demo/vendor/marked.esm.js www/extension/hearth/vendor/
	cp www/node_modules/@mozilla/readability/Readability.js www/extension/hearth/vendor/

## test-browser: headless Chromium (Debian's, via playwright-core) against www/server.mjs.
## Store/server/SHA-256 tests need only `make www`; the engine tests need `make wasm` and `make models`;
## the demo test also Gemma 3 (`make models-test`), the extension test `make extension`.
test-browser: www wasm models-test extension native-bin
	node --test --test-concurrency=1 tests/browser/

## test-consumers: the package as web developers get it (tests/consumers/): `npm pack` of www/,
## installed from the tarball into a Vite app (production build and dev server), a webpack 5 app
## and a plain page importing it from another origin; each opened in Chromium (load, chat,
## summarize). The pinned bundlers install from the committed lock files into .cache/consumers/
## (once; again when a lock file changes).
test-consumers: www wasm models
	node --test --test-concurrency=1 tests/consumers/

## serve-www: the static server on 127.0.0.1:8080 (www/ at /, models/cache/ at /models/).
serve-www: www
	node www/server.mjs --port 8080

## bench-store: Cache API vs OPFS write/read throughput in Chromium (docs/store-decision.md).
bench-store: www
	node tests/browser/bench_store.mjs

## native-bin: the native CLI the browser tests compare against (the test profile: what
## `cargo test` already built, so this is a no-op after `make test-rust`).
native-bin:
	$(CARGO) build --profile test --bin hearth
