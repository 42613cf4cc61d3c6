/**
 * CPU time per process, read from /proc before and after a measured run and divided by the calls
 * it served. Every process that works for a call is counted under a role: the platform's three
 * services, the miniworkers under the worker, Docker's daemons, the shims of the platform's
 * containers and the function processes inside them. The bench client is counted apart: it is the
 * load, not the platform.
 */
import { allPids, clockTicksPerSecond, descendantPids, isNodeProcess, readCmdline, readStat, type ProcStat } from './procfs';
import { round } from './stats';

export const PLATFORM_ROLES = ['api', 'db_service', 'worker', 'miniworkers', 'dockerd', 'containerd', 'containerd_shim', 'function', 'container_other'] as const;
export type PlatformRole = (typeof PLATFORM_ROLES)[number];
export type CpuRole = PlatformRole | 'bench_client';
const ROLES: readonly CpuRole[] = [...PLATFORM_ROLES, 'bench_client'];

/** What a process is doing there, shown in the table beside its role. */
const ROLE_LABEL: Record<CpuRole, string> = {
  api: 'api',
  db_service: 'db-service',
  worker: 'worker (and its non-node children)',
  miniworkers: 'miniworkers (node processes under the worker)',
  dockerd: 'dockerd',
  containerd: 'containerd',
  containerd_shim: 'containerd-shim',
  function: 'function processes (/opt/faas/handler)',
  container_other: 'other processes in the containers',
  bench_client: 'bench client (the load, not in the sum)',
};

/** The command line every function process of the runtimes carries (the bootstraps' path). */
const HANDLER_PATH = '/opt/faas/handler';
const CONTAINER_ID = /\b([0-9a-f]{64})\b/;

export interface CpuScope {
  api?: number;
  dbService?: number;
  worker?: number;
  /** Defaults to this process. */
  benchPid?: number;
}

interface Seen {
  /** Undefined for a process that belongs to no role: kept so that one that gains a role later is measured from here. */
  role?: CpuRole;
  ticks: number;
  /** For a shim and the processes under it: the container the shim names (docker's carry `-id <id>`), if it names one. */
  container?: string;
}

export interface CpuSnapshot {
  at: bigint;
  /** Every process, keyed by pid and start time so that a reused pid is a new process. */
  processes: Map<string, Seen>;
}

/** Reads every process once; those that belong to a role are marked with it. */
export function takeCpuSnapshot(scope: CpuScope): CpuSnapshot {
  const at = process.hrtime.bigint();
  const stats = new Map<number, ProcStat>();
  for (const pid of allPids()) {
    const stat = readStat(pid);
    if (stat) stats.set(pid, stat);
  }
  const roles = new Map<number, CpuRole>();
  const assign = (pid: number | undefined, role: CpuRole) => {
    if (pid !== undefined && stats.has(pid) && !roles.has(pid)) roles.set(pid, role);
  };
  assign(scope.benchPid ?? process.pid, 'bench_client');
  assign(scope.api, 'api');
  assign(scope.dbService, 'db_service');
  assign(scope.worker, 'worker');
  if (scope.worker !== undefined) {
    // Miniworkers are node processes under the worker; were they threads of the worker, its own
    // ticks would hold them and this finds none.
    for (const pid of descendantPids(scope.worker)) {
      const stat = stats.get(pid) ?? readStat(pid);
      if (!stat) continue;
      stats.set(pid, stat);
      assign(pid, isNodeProcess(pid, stat.comm) ? 'miniworkers' : 'worker');
    }
  }
  const containers = new Map<number, string | undefined>();
  for (const stat of [...stats.values()]) {
    if (roles.has(stat.pid)) continue;
    if (stat.comm === 'dockerd') assign(stat.pid, 'dockerd');
    else if (stat.comm === 'containerd') assign(stat.pid, 'containerd');
    else if (stat.comm.startsWith('containerd-shim')) {
      const id = CONTAINER_ID.exec(readCmdline(stat.pid))?.[1];
      assign(stat.pid, 'containerd_shim');
      containers.set(stat.pid, id);
      // The container's processes run under its shim, visible from here in the host's /proc.
      for (const pid of descendantPids(stat.pid)) {
        const inner = stats.get(pid) ?? readStat(pid);
        if (!inner) continue;
        stats.set(pid, inner);
        assign(pid, readCmdline(pid).includes(HANDLER_PATH) ? 'function' : 'container_other');
        containers.set(pid, id);
      }
    }
  }
  const processes = new Map<string, Seen>();
  for (const stat of stats.values()) {
    processes.set(`${stat.pid}:${stat.start}`, { role: roles.get(stat.pid), ticks: stat.ticks, container: containers.get(stat.pid) });
  }
  return { at, processes };
}

export interface CpuDelta {
  wallMs: number;
  /** CPU seconds spent between the two snapshots, by role. */
  seconds: Record<CpuRole, number>;
  /** Processes counted (present at the end), by role. */
  processes: Record<CpuRole, number>;
  /** Processes that started in between: all their ticks fall in the window and are counted. */
  appeared: Record<CpuRole, number>;
  /** Processes that ended in between: the ticks they spent in the window are lost to the count. */
  vanished: Record<CpuRole, number>;
  unattributedShims: number;
  allShimsCounted: boolean;
}

function byRole(): Record<CpuRole, number> {
  return Object.fromEntries(ROLES.map((r) => [r, 0])) as Record<CpuRole, number>;
}

const SHIM_ROLES: ReadonlySet<CpuRole> = new Set(['containerd_shim', 'function', 'container_other']);

/**
 * What the processes spent between two snapshots. With `containerIds` (the platform's containers,
 * best listed after the second snapshot so that the listing is not in the window), a shim and the
 * processes under it count only if the shim names one of them: other users of the engine are
 * left out. A shim that names no container is counted. Without them every shim counts.
 */
export function cpuDelta(before: CpuSnapshot, after: CpuSnapshot, containerIds?: ReadonlySet<string>): CpuDelta {
  const hz = clockTicksPerSecond();
  const seconds = byRole();
  const processes = byRole();
  const appeared = byRole();
  const vanished = byRole();
  let unattributedShims = 0;
  const counts = (seen: Seen): seen is Seen & { role: CpuRole } => {
    if (!seen.role) return false;
    if (!containerIds || !SHIM_ROLES.has(seen.role) || seen.container === undefined) return true;
    return containerIds.has(seen.container);
  };
  for (const [key, now] of after.processes) {
    if (!counts(now)) continue;
    if (containerIds && now.role === 'containerd_shim' && now.container === undefined) unattributedShims++;
    const then = before.processes.get(key);
    processes[now.role]++;
    if (!then) appeared[now.role]++;
    seconds[now.role] += (now.ticks - (then?.ticks ?? 0)) / hz;
  }
  for (const [key, then] of before.processes) if (counts(then) && !after.processes.has(key)) vanished[then.role]++;
  return {
    wallMs: Number(after.at - before.at) / 1e6,
    seconds,
    processes,
    appeared,
    vanished,
    unattributedShims,
    allShimsCounted: containerIds === undefined,
  };
}

export interface CpuPerCall {
  /** µs of CPU per call summed over every platform role. */
  platformUs: number;
  byRole: Record<PlatformRole, number>;
  benchClientUs: number;
}

export function cpuPerCall(delta: CpuDelta, calls: number): CpuPerCall {
  const us = (s: number) => round((s * 1e6) / calls, 1);
  const byRoleUs = Object.fromEntries(PLATFORM_ROLES.map((r) => [r, us(delta.seconds[r])])) as Record<PlatformRole, number>;
  const platformSeconds = PLATFORM_ROLES.reduce((sum, r) => sum + delta.seconds[r], 0);
  return { platformUs: us(platformSeconds), byRole: byRoleUs, benchClientUs: us(delta.seconds.bench_client) };
}

/** A table of the CPU a run cost, per role, with what the count could not see. */
export function formatCpuTable(title: string, delta: CpuDelta, calls: number): string {
  const perCall = cpuPerCall(delta, calls);
  const platformSeconds = PLATFORM_ROLES.reduce((sum, r) => sum + delta.seconds[r], 0);
  const width = Math.max(...ROLES.map((r) => ROLE_LABEL[r].length), 'platform sum'.length);
  const line = (label: string, procs: number | string, seconds: number, us: number, share: string) =>
    `${label.padEnd(width)}  ${String(procs).padStart(5)}  ${seconds.toFixed(2).padStart(7)}  ${us.toFixed(1).padStart(8)}  ${share.padStart(5)}`;
  const out = [
    `${title}: ${calls} calls in ${(delta.wallMs / 1000).toFixed(2)} s, ${clockTicksPerSecond()} ticks/s`,
    `${'process'.padEnd(width)}  procs    CPU s   µs/call  share`,
    `${'-'.repeat(width)}  -----  -------  --------  -----`,
  ];
  for (const role of PLATFORM_ROLES) {
    const share = platformSeconds > 0 ? `${Math.round((delta.seconds[role] / platformSeconds) * 100)} %` : '-';
    out.push(line(ROLE_LABEL[role], delta.processes[role], delta.seconds[role], perCall.byRole[role], share));
  }
  const platformProcs = PLATFORM_ROLES.reduce((sum, r) => sum + delta.processes[r], 0);
  out.push(line('platform sum', platformProcs, platformSeconds, perCall.platformUs, '100 %'));
  out.push(line(ROLE_LABEL.bench_client, delta.processes.bench_client, delta.seconds.bench_client, perCall.benchClientUs, ''));
  const busy = (platformSeconds + delta.seconds.bench_client) / (delta.wallMs / 1000);
  out.push(`cores busy on average: platform ${(platformSeconds / (delta.wallMs / 1000)).toFixed(2)}, platform + client ${busy.toFixed(2)}`);
  const moved = ROLES.filter((r) => delta.appeared[r] > 0 || delta.vanished[r] > 0).map((r) => `${r} +${delta.appeared[r]}/-${delta.vanished[r]}`);
  if (moved.length > 0) out.push(`processes started/ended during the run (an ended one's ticks are lost): ${moved.join(', ')}`);
  if (delta.allShimsCounted) out.push('every containerd-shim on the machine is counted, with the processes under it (the platform\'s containers were not given)');
  if (delta.unattributedShims > 0) out.push(`${delta.unattributedShims} shims did not name their container and are counted as the platform's`);
  out.push('dockerd and containerd serve every user of the engine: whatever else ran on the machine meanwhile is in their figures');
  return out.join('\n');
}
