#!/usr/bin/env python3
"""Writes www/src/registry-data.ts from models/registry.toml: the browser's view of the model
registry, generated at build time (`npm run build` in www/ runs this first) so the TOML file is
the one place the list is kept. The TypeScript types and the lookup functions are hand-written
in www/src/registry.ts, which re-exports what this writes.

Each [[model]] gives the fields of `RegistryModel` (registry.ts) and nothing else (the PyPI
`packages` are for models/fetch.py). A missing or mistyped field fails the build.
"""
import json
import pathlib
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "models" / "registry.toml"
OUT = ROOT / "www" / "src" / "registry-data.ts"
# The fields of RegistryModel (www/src/registry.ts), in order, with their TOML types.
FIELDS = {"id": str, "name": str, "file": str, "bytes": int, "sha256": str, "licence": str,
          "architecture": str, "quant": str, "chat": bool}


def entry(model: dict) -> dict:
    out = {}
    for key, kind in FIELDS.items():
        value = model.get(key)
        if type(value) is not kind:
            sys.exit(f"{SRC}: model {model.get('id', '?')!r}: {key} must be a {kind.__name__}, got {value!r}")
        out[key] = value
    return out


def main() -> None:
    reg = tomllib.loads(SRC.read_text())
    models = [entry(m) for m in reg.get("model", [])]
    ids = [m["id"] for m in models]
    if reg.get("default") not in ids or len(set(ids)) != len(ids):
        sys.exit(f"{SRC}: `default` must name one of the models, and ids must be unique")
    text = (
        "// Generated from models/registry.toml by scripts/registry_ts.py (npm run build): do not edit.\n"
        'import type { RegistryModel } from "./registry.js";\n\n'
        "/** The id loaded when none is given. */\n"
        f"export const DEFAULT_MODEL_ID = {json.dumps(reg['default'])};\n\n"
        "/** Every model in the registry. */\n"
        f"export const REGISTRY: readonly RegistryModel[] = {json.dumps(models, indent=2)};\n"
    )
    if not OUT.exists() or OUT.read_text() != text:
        OUT.write_text(text)


if __name__ == "__main__":
    main()
