/**
 * The engine Worker: hosts one {@link EngineCore} and answers the messages of `protocol.ts`.
 * Started by `Engine.load` (module Worker); never imported by pages directly.
 */

import { EngineCore } from "./core.js";
import { HearthError } from "./errors.js";
import type { FromWorker, ToWorker } from "./protocol.js";
import { setPoolTrapChannel, stopThreadPools } from "./wasm-instance.js";

interface WorkerScope {
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
  postMessage(msg: FromWorker): void;
}
const scope = globalThis as unknown as WorkerScope;

let core: EngineCore | null = null;
const controllers = new Map<number, AbortController>();

function post(msg: FromWorker): void {
  scope.postMessage(msg);
}

function fail(id: number, e: unknown): void {
  post({ id, type: "error", error: HearthError.from(e).toJSON() });
}

function needCore(): EngineCore {
  if (!core) throw new HearthError("BAD_REQUEST", "no model loaded in this worker");
  return core;
}

async function handle(msg: ToWorker): Promise<void> {
  const { id } = msg;
  switch (msg.type) {
    case "abort":
      controllers.get(msg.target)?.abort();
      return;
    case "load": {
      const ac = new AbortController();
      controllers.set(id, ac);
      try {
        if (core) throw new HearthError("BAD_REQUEST", "this worker already has a model");
        setPoolTrapChannel(msg.poolTrapChannel);
        // revive: false: after a trap the page discards this whole Worker and starts a new one.
        core = await EngineCore.load(
          msg.model,
          msg.config,
          {
            signal: ac.signal,
            onProgress: (progress) => post({ id, type: "progress", progress }),
            onBackendChange: (change) => post({ id: 0, type: "backendchange", change, info: needCore().info }),
          },
          undefined,
          { revive: false },
        );
        post({ id, type: "result", value: core.info });
      } finally {
        controllers.delete(id);
      }
      return;
    }
    case "generate": {
      const ac = new AbortController();
      controllers.set(id, ac);
      try {
        const r = await needCore().generate(msg.request, (text) => post({ id, type: "delta", text }), ac.signal);
        post({ id, type: "result", value: r });
      } finally {
        controllers.delete(id);
      }
      return;
    }
    case "countTokens":
      post({ id, type: "result", value: await needCore().countTokens(msg.text) });
      return;
    case "countTokensBatch":
      post({ id, type: "result", value: await needCore().countTokensBatch(msg.texts) });
      return;
    case "renderChat":
      post({ id, type: "result", value: await needCore().renderChat(msg.messages) });
      return;
    case "prepareConstraints":
      post({ id, type: "result", value: await needCore().prepareConstraints() });
      return;
    case "reset":
      await needCore().reset();
      post({ id, type: "result", value: null });
      return;
    case "dispose":
      // Sent by the page at unload(), which then terminates this Worker. The answer: how many
      // thread-pool Workers closed (threaded build), so that none is left running script.
      await core?.dispose().catch(() => undefined);
      core = null;
      post({ id, type: "result", value: await stopThreadPools() });
      return;
  }
}

scope.onmessage = (e) => {
  handle(e.data).catch((err: unknown) => {
    // A trap killed the engine: the page replaces this Worker before its next request (told
    // first, so a retry sent as soon as the error arrives already goes to the new Worker).
    if (core?.crashed) post({ id: 0, type: "crashed", message: core.crashed.message });
    fail(e.data.id, err);
  });
};
