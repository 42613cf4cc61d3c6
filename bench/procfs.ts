/**
 * What the bench reads from Linux's /proc about the processes it measures: CPU time, memory and
 * the process tree. Every reader tolerates a process that ends while it is read (it returns
 * undefined or an empty list), because processes come and go while the platform runs.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** The kernel's clock tick (USER_HZ) that utime and stime are counted in; 100 when getconf cannot say. */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    try {
      const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
      ticksPerSecond = Number.isInteger(value) && value > 0 ? value : 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

export interface ProcStat {
  pid: number;
  comm: string;
  ppid: number;
  /** utime + stime of every thread of the process, in clock ticks. */
  ticks: number;
  /** Start time after boot, in clock ticks: with the pid, it names one process even if the pid is reused. */
  start: number;
}

/** /proc/<pid>/stat, parsed; undefined if the process is gone. */
export function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm is in parentheses and may itself hold spaces and parentheses: the fields start after the last ')'.
  const close = text.lastIndexOf(')');
  const open = text.indexOf('(');
  if (open < 0 || close < open) return undefined;
  const fields = text.slice(close + 2).split(' ');
  // fields[0] is field 3 of proc(5) (state): utime is field 14, stime 15, starttime 22.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  const start = Number(fields[19]);
  const ppid = Number(fields[1]);
  if (![utime, stime, start, ppid].every(Number.isFinite)) return undefined;
  return { pid, comm: text.slice(open + 1, close), ppid, ticks: utime + stime, start };
}

/** The command line, arguments joined by spaces; '' for a kernel thread or a process that is gone. */
export function readCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
  } catch {
    return '';
  }
}

/** The executable's path, or undefined when it cannot be read. */
export function readExe(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}

/** Whether the process runs node (its executable, or its name when the executable cannot be read). */
export function isNodeProcess(pid: number, comm?: string): boolean {
  const exe = readExe(pid);
  if (exe !== undefined) return exe === process.execPath || /\/node$/.test(exe);
  return (comm ?? readStat(pid)?.comm) === 'node';
}

/** Every pid under /proc now. */
export function allPids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

/**
 * The direct children of a process, from /proc/<pid>/task/<tid>/children of every thread: a child
 * is listed under the thread that started it, which is not always the main one.
 */
export function childPids(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const tid of tasks) {
    try {
      for (const child of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/)) if (child) out.push(Number(child));
    } catch {
      /* the thread ended */
    }
  }
  return out;
}

/** Every descendant of a process (children, their children, ...), not the process itself. */
export function descendantPids(pid: number): number[] {
  const out: number[] = [];
  const seen = new Set<number>([pid]);
  const stack = childPids(pid);
  while (stack.length > 0) {
    const next = stack.pop()!;
    if (seen.has(next)) continue;
    seen.add(next);
    out.push(next);
    stack.push(...childPids(next));
  }
  return out;
}

function statusKb(pid: number, field: string): number | undefined {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Resident memory now (VmRSS), in MB; 0 if the process is gone. */
export function rssMb(pid: number): number {
  return (statusKb(pid, 'VmRSS') ?? 0) / 1024;
}

/** The highest resident memory the process reached (VmHWM), in MB; 0 if the process is gone. */
export function peakRssMb(pid: number): number {
  return (statusKb(pid, 'VmHWM') ?? 0) / 1024;
}

/**
 * Proportional resident memory (Pss from smaps_rollup), in MB: pages shared between processes
 * (the node binary, for instance) are divided among them instead of counted in each. 0 if unreadable.
 */
export function pssMb(pid: number): number {
  try {
    const match = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return match ? Number(match[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** The threads of a process (its /proc tasks): a node process has about a dozen, plus one per worker thread. */
export function threadCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/task`).length;
  } catch {
    return 0;
  }
}
