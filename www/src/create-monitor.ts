/**
 * The `CreateMonitor` the polyfill's `create({monitor})` hands to the callback, as the Writing
 * Assistance APIs and the Prompt API define it: an EventTarget with an `ondownloadprogress`
 * handler attribute, firing `downloadprogress` ProgressEvents whose `loaded` goes from 0 to 1
 * (`total` 1): the first event is `loaded: 0`, the last `loaded: 1`, once, and none at all when
 * the model was already available. As the spec's download loop: fractions are floored to
 * 1/65,536 and an event follows the previous one by more than 50 ms (except the last, `1`).
 */

/** What `create({monitor})` callbacks receive (the specs' `CreateMonitor` interface). */
export interface DownloadMonitor extends EventTarget {
  /** The `downloadprogress` event handler attribute. */
  ondownloadprogress: ((this: DownloadMonitor, e: ProgressEvent) => unknown) | null;
}

export class CreateMonitor extends EventTarget implements DownloadMonitor {
  /** The `downloadprogress` event handler attribute. */
  ondownloadprogress: ((this: DownloadMonitor, e: ProgressEvent) => unknown) | null = null;
  private last = -1;
  private lastTime = -Infinity;

  constructor() {
    super();
    this.addEventListener("downloadprogress", (e) => this.ondownloadprogress?.call(this, e as ProgressEvent));
  }

  /**
   * Fires `downloadprogress` with `fraction` (clamped to [0, 1], floored to 1/65,536) when it
   * moved forward and more than 50 ms passed since the last event (`0` and `1` always fire).
   */
  report(fraction: number): void {
    const clamped = Math.min(1, Math.max(0, fraction));
    const loaded = clamped === 1 ? 1 : Math.floor(clamped * 65536) / 65536;
    if (loaded <= this.last) return;
    const now = performance.now();
    if (loaded !== 1 && this.last >= 0 && now - this.lastTime <= 50) return;
    this.last = loaded;
    this.lastTime = now;
    this.dispatchEvent(new ProgressEvent("downloadprogress", { loaded, total: 1, lengthComputable: true }));
  }
}
