/**
 * The `CreateMonitor` the polyfill's `create({monitor})` hands to the callback, as the Writing
 * Assistance APIs and the Prompt API define it: an EventTarget with an `ondownloadprogress`
 * handler attribute, firing `downloadprogress` ProgressEvents whose `loaded` goes from 0 to 1
 * (`total` 1): the first event is `loaded: 0`, the last `loaded: 1`, once, and none at all when
 * the model was already available.
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

  constructor() {
    super();
    this.addEventListener("downloadprogress", (e) => this.ondownloadprogress?.call(this, e as ProgressEvent));
  }

  /** Fires `downloadprogress` with `fraction` (clamped to [0, 1]) when it moved forward. */
  report(fraction: number): void {
    const loaded = Math.min(1, Math.max(0, fraction));
    if (loaded <= this.last) return;
    this.last = loaded;
    this.dispatchEvent(new ProgressEvent("downloadprogress", { loaded, total: 1, lengthComputable: true }));
  }
}
