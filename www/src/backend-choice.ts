/**
 * Which backend a load runs on. {@link chooseBackend} is the one decision: `cpu` and `webgpu`
 * as asked; `auto` takes the CPU without an adapter or with a software one, and with a
 * hardware adapter whichever of the two its `measure` callback finds faster (`backend-probe.ts`:
 * a timed probe, cached per adapter).
 */

import { HearthError } from "./errors.js";
import type { Backend, BackendPreference } from "./types.js";

interface GpuLike {
  requestAdapter(): Promise<unknown>;
}

interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

/** What {@link probeWebGpu} found. */
export interface WebGpuProbe {
  ok: boolean;
  reason: string;
  software: boolean;
  /** The adapter's vendor, architecture, device and description (the speed probe's cache key). */
  adapterKey?: string;
}

/** Measures WebGPU against the CPU on the adapter `adapterKey`: the backend to use and why. */
export type SpeedProbe = (adapterKey: string) => Promise<{ backend: Backend; reason: string }>;

function adapterKeyOf(adapter: unknown): string {
  const info = (adapter as { info?: AdapterInfoLike }).info ?? {};
  return [info.vendor, info.architecture, info.device, info.description].map((x) => x ?? "").join("/");
}

/** A software WebGPU adapter (SwiftShader, llvmpipe): far slower than the wasm CPU backend. */
function softwareAdapterName(adapter: unknown): string | null {
  const a = adapter as { info?: AdapterInfoLike; isFallbackAdapter?: boolean };
  const info = a.info ?? {};
  const text = [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ");
  const m = /swiftshader|llvmpipe|lavapipe|software/i.exec(text);
  if (m) return m[0];
  return info.isFallbackAdapter === true || a.isFallbackAdapter === true ? "fallback adapter" : null;
}

/**
 * Whether WebGPU gives an adapter here; the reason when it does not. `software` is true when
 * the adapter is a software renderer: `backend: "auto"` then runs on the CPU, which is faster
 * (measured in headless Chromium: SwiftShader 0.2 tok/s vs wasm CPU 17 tok/s on SmolLM2).
 */
export async function probeWebGpu(): Promise<WebGpuProbe> {
  const gpu = (globalThis as { navigator?: { gpu?: GpuLike } }).navigator?.gpu;
  if (!gpu) return { ok: false, reason: "WebGPU unavailable: navigator.gpu is missing", software: false };
  try {
    const adapter = await gpu.requestAdapter();
    if (!adapter) return { ok: false, reason: "WebGPU unavailable: no adapter", software: false };
    const soft = softwareAdapterName(adapter);
    const adapterKey = adapterKeyOf(adapter);
    return soft
      ? { ok: true, reason: `WebGPU adapter is a software renderer (${soft})`, software: true, adapterKey }
      : { ok: true, reason: "WebGPU adapter available", software: false, adapterKey };
  } catch (e) {
    return { ok: false, reason: `WebGPU unavailable: ${e instanceof Error ? e.message : String(e)}`, software: false };
  }
}

/**
 * The backend for a load and why. `cpu` is taken as asked; `webgpu` needs an adapter
 * (`DEVICE_LOST` without one); `auto` takes the CPU when `probe` finds no adapter or a software
 * one, and otherwise what `measure` finds faster (WebGPU when no `measure` is given, or when it
 * fails: the reason then says so).
 */
export async function chooseBackend(preference: BackendPreference, probe: () => Promise<WebGpuProbe> = probeWebGpu, measure?: SpeedProbe): Promise<{ backend: Backend; reason: string }> {
  if (preference === "cpu") return { backend: "cpu", reason: "CPU requested" };
  const p = await probe();
  if (p.ok && p.software && preference === "auto") return { backend: "cpu", reason: `WebGPU unavailable: ${p.reason}, slower than the CPU backend` };
  if (p.ok && preference === "auto" && measure) {
    try {
      return await measure(p.adapterKey ?? "");
    } catch (e) {
      return { backend: "webgpu", reason: `WebGPU adapter available (the speed probe failed: ${e instanceof Error ? e.message : String(e)})` };
    }
  }
  if (p.ok) return { backend: "webgpu", reason: preference === "webgpu" ? "WebGPU requested" : "WebGPU adapter available" };
  if (preference === "webgpu") throw new HearthError("DEVICE_LOST", p.reason);
  return { backend: "cpu", reason: p.reason };
}
