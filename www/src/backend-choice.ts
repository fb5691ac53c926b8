/**
 * Which backend a load runs on: WebGPU when the browser gives a hardware adapter, else the CPU.
 * {@link chooseBackend} is the one decision; its `probe` argument is where a different probe
 * (a speed probe for `auto`) plugs in.
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
    return soft
      ? { ok: true, reason: `WebGPU adapter is a software renderer (${soft})`, software: true }
      : { ok: true, reason: "WebGPU adapter available", software: false };
  } catch (e) {
    return { ok: false, reason: `WebGPU unavailable: ${e instanceof Error ? e.message : String(e)}`, software: false };
  }
}

/**
 * The backend for a load and why. `cpu` is taken as asked; `webgpu` needs an adapter
 * (`DEVICE_LOST` without one); `auto` takes WebGPU unless `probe` finds none or a software one.
 */
export async function chooseBackend(preference: BackendPreference, probe: () => Promise<WebGpuProbe> = probeWebGpu): Promise<{ backend: Backend; reason: string }> {
  if (preference === "cpu") return { backend: "cpu", reason: "CPU requested" };
  const p = await probe();
  if (p.ok && p.software && preference === "auto") return { backend: "cpu", reason: `WebGPU unavailable: ${p.reason}, slower than the CPU backend` };
  if (p.ok) return { backend: "webgpu", reason: preference === "webgpu" ? "WebGPU requested" : "WebGPU adapter available" };
  if (preference === "webgpu") throw new HearthError("DEVICE_LOST", p.reason);
  return { backend: "cpu", reason: p.reason };
}
