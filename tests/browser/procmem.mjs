// Memory of one Chromium instance, read from /proc (Linux only): the browser's main process is
// the one whose command line names the instance's unique --user-data-dir, and the instance is it
// plus all its descendants (renderers, GPU, utility processes, zygotes). Engine-agnostic, so
// Hearth and wllama are measured the same way. Used by bench_peers.mjs; not a test.
import fs from "node:fs";

const PAGE = 4096; // bytes per page in /proc/<pid>/statm (x86-64 and arm64 Linux defaults)

function readOr(p, d) {
  try {
    return fs.readFileSync(p, "utf8");
  } catch {
    return d; // the process exited between listing and reading
  }
}

function pids() {
  return fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number);
}

/**
 * The fields of /proc/<pid>/stat after the command name (which, in parentheses, may hold
 * spaces): index 0 is field 3 (state), so field k is at k - 3. Null when the process is gone.
 */
function statFields(pid) {
  const s = readOr(`/proc/${pid}/stat`, "");
  const close = s.lastIndexOf(")");
  return close < 0 ? null : s.slice(close + 2).split(" ");
}

/** The parent pid (field 4 of /proc/<pid>/stat), or -1. */
function ppidOf(pid) {
  const f = statFields(pid);
  return f ? Number(f[1]) : -1;
}

/** The pid of the Chromium main process launched with `userDataDir`, or null. */
export function browserPid(userDataDir) {
  const needle = `--user-data-dir=${userDataDir}`;
  const hits = pids().filter((p) => readOr(`/proc/${p}/cmdline`, "").split("\0").includes(needle));
  // Child processes may repeat the flag; the main process is the one whose parent is not a hit.
  return hits.find((p) => !hits.includes(ppidOf(p))) ?? null;
}

/** `root` and every descendant of it. */
export function processTree(root) {
  const children = new Map();
  for (const p of pids()) {
    const pp = ppidOf(p);
    if (!children.has(pp)) children.set(pp, []);
    children.get(pp).push(p);
  }
  const out = [];
  const todo = [root];
  while (todo.length) {
    const p = todo.pop();
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

/** Sum of the resident set sizes of `pidList`, in bytes (shared pages count once per process). */
export function rssBytes(pidList) {
  let total = 0;
  for (const p of pidList) {
    const f = readOr(`/proc/${p}/statm`, "").split(" ");
    if (f.length > 1) total += Number(f[1]) * PAGE;
  }
  return total;
}

/**
 * Samples the total RSS of the Chromium instance of `userDataDir` every `intervalMs` (the process
 * tree is re-listed every `rescanMs`, as renderers and Workers come and go). Returns
 * {baseline(), stop()}: `baseline()` records the current total as the baseline; `stop()` ends
 * sampling and returns {baseline_rss_mib, peak_rss_mib, peak_over_baseline_mib, samples, pids}.
 * Throws when the browser process cannot be found (not Linux, or the dir matches nothing).
 */
export function sampleBrowserMemory(userDataDir, { intervalMs = 50, rescanMs = 1000 } = {}) {
  const root = browserPid(userDataDir);
  if (root == null) throw new Error(`no process with --user-data-dir=${userDataDir} in /proc`);
  let tree = processTree(root);
  let scanned = Date.now();
  let peak = 0;
  let base = null;
  let samples = 0;
  const seen = new Set(tree);
  const sample = () => {
    if (Date.now() - scanned >= rescanMs) {
      tree = processTree(root);
      tree.forEach((p) => seen.add(p));
      scanned = Date.now();
    }
    const v = rssBytes(tree);
    peak = Math.max(peak, v);
    samples++;
    return v;
  };
  sample();
  const timer = setInterval(sample, intervalMs);
  const mib = (b) => (b == null ? null : b / 2 ** 20);
  return {
    baseline() {
      tree = processTree(root);
      tree.forEach((p) => seen.add(p));
      scanned = Date.now();
      base = sample();
      return mib(base);
    },
    stop() {
      clearInterval(timer);
      sample();
      return {
        baseline_rss_mib: mib(base),
        peak_rss_mib: mib(peak),
        peak_over_baseline_mib: base == null ? null : mib(peak - base),
        mem_samples: samples,
        mem_processes: seen.size,
      };
    },
  };
}

/** CPU seconds (user + system, from /proc/<pid>/stat) used so far by `pidList` together. */
export function cpuSeconds(pidList) {
  const hz = 100; // USER_HZ: 100 on Linux x86-64 and arm64
  let ticks = 0;
  for (const p of pidList) {
    const f = statFields(p);
    if (f) ticks += Number(f[11]) + Number(f[12]); // utime, stime: fields 14 and 15
  }
  return ticks / hz;
}

/** RSS in bytes of each process of `pidList`: Map pid → bytes. */
export function rssByProcess(pidList) {
  const out = new Map();
  for (const p of pidList) {
    const f = readOr(`/proc/${p}/statm`, "").split(" ");
    if (f.length > 1) out.set(p, Number(f[1]) * PAGE);
  }
  return out;
}

/** The process type of a Chromium process (`--type=renderer` …; "browser" for the main one). */
export function processType(pid) {
  const t = readOr(`/proc/${pid}/cmdline`, "").split(/[\0 ]/).find((a) => a.startsWith("--type="));
  return t ? t.slice(7) : "browser";
}

/**
 * The `n` mappings of `pid` with the most resident memory (/proc/<pid>/smaps): [{range, name,
 * size, rss}] in bytes, where the name is the mapped file or [anon], [heap]….
 */
export function largestMappings(pid, n = 8) {
  const maps = [];
  let cur = null;
  for (const line of readOr(`/proc/${pid}/smaps`, "").split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      cur = { range: `${head[1]}-${head[2]}`, name: head[3] || "[anon]", size: (parseInt(head[2], 16) - parseInt(head[1], 16)), rss: 0 };
      maps.push(cur);
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && cur) cur.rss = Number(rss[1]) * 1024;
  }
  return maps.sort((a, b) => b.rss - a.rss).slice(0, n);
}
