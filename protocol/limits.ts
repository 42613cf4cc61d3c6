import { z } from 'zod';

/**
 * Per-function limits, chosen at registration. Only what the user set is stored on the function;
 * the node fills in its own defaults, so an operator can change a default without re-registering.
 */
export interface FunctionLimits {
  timeoutMs?: number;
  memoryMb?: number;
  cpus?: number;
  /** Calls of this function running at once, across the platform. */
  concurrency?: number;
  /** Give the function a network (the operator must allow it). */
  network?: boolean;
}

/** What the platform accepts: the api's maxima, validated at start-up. */
export interface LimitMaxima {
  maxTimeoutMs: number;
  maxMemoryMb: number;
  maxCpus: number;
  maxConcurrency: number;
  allowNetwork: boolean;
}

const intField = (name: string) =>
  z
    .string()
    .regex(/^\d{1,10}$/, `${name} must be a whole number`)
    .transform(Number);

/** The limit fields of the registerFunction form (multipart fields arrive as strings). */
export const limitFieldsSchema = z.object({
  timeout: intField('timeout').optional().describe('a call longer than this many milliseconds ends TIMEOUT'),
  memory: intField('memory').optional().describe("the container's memory in MB"),
  cpus: z
    .string()
    .regex(/^\d{1,3}(\.\d{1,3})?$/, 'cpus must be a number such as 0.5 or 2')
    .transform(Number)
    .optional()
    .describe("the container's CPUs, such as 0.5 or 2"),
  concurrency: intField('concurrency').optional().describe("this function's calls running at once, on all nodes"),
  network: z.enum(['true', 'false']).optional().describe('the container may reach the network (if the platform allows it)'),
});

export type LimitFields = z.output<typeof limitFieldsSchema>;

/** Checks the requested limits against the platform's maxima; the message says which and why. */
export function resolveLimits(fields: LimitFields, max: LimitMaxima): { limits: FunctionLimits } | { error: string } {
  const limits: FunctionLimits = {};
  if (fields.timeout !== undefined) {
    if (fields.timeout < 100 || fields.timeout > max.maxTimeoutMs) return { error: `timeout must be between 100 and ${max.maxTimeoutMs} ms` };
    limits.timeoutMs = fields.timeout;
  }
  if (fields.memory !== undefined) {
    if (fields.memory < 16 || fields.memory > max.maxMemoryMb) return { error: `memory must be between 16 and ${max.maxMemoryMb} MB` };
    limits.memoryMb = fields.memory;
  }
  if (fields.cpus !== undefined) {
    if (fields.cpus < 0.01 || fields.cpus > max.maxCpus) return { error: `cpus must be between 0.01 and ${max.maxCpus}` };
    limits.cpus = fields.cpus;
  }
  if (fields.concurrency !== undefined) {
    if (fields.concurrency < 1 || fields.concurrency > max.maxConcurrency) return { error: `concurrency must be between 1 and ${max.maxConcurrency}` };
    limits.concurrency = fields.concurrency;
  }
  if (fields.network === 'true') {
    if (!max.allowNetwork) return { error: 'network is not allowed on this platform (the operator sets FAAS_ALLOW_FUNCTION_NETWORK=true)' };
    limits.network = true;
  }
  return { limits };
}

export const functionLimitsSchema = z
  .object({
    timeoutMs: z.number().int().min(100),
    memoryMb: z.number().int().min(16),
    cpus: z.number().positive(),
    concurrency: z.number().int().min(1),
    network: z.boolean(),
  })
  .partial()
  .strict();

/** How one container is fenced in: the node's sandbox settings with the function's limits applied. */
export interface Sandbox {
  memoryBytes: number;
  nanoCpus: number;
  pidsLimit: number;
  nofile: number;
  tmpfsBytes: number;
  /** uid:gid the function runs as; never root. */
  user: string;
  network: 'none' | 'bridge';
  /** Caps on what a call may return and log; past the result cap the call fails result_too_large. */
  maxResultBytes: number;
  maxLogBytes: number;
  /** The function keeps files in OUTPUT_DIR that the platform collects after each call, up to maxOutputBytes. */
  outputs: boolean;
  maxOutputBytes: number;
}

/** Where a function registered with outputs writes the files to keep (FAAS_OUTPUT_DIR in its environment). */
export const OUTPUT_DIR = '/out';

/** A stable tag of a function's own limits, such as `memoryMb=64,timeoutMs=1500`. */
export function limitsTag(limits: FunctionLimits): string {
  const keys = Object.keys(limits).sort() as Array<keyof FunctionLimits>;
  return keys.map((k) => `${k}=${String(limits[k])}`).join(',');
}

/** Limits that change how a container is made: a stem cell made with the node's defaults cannot take them. */
export function changesContainer(limits: FunctionLimits | undefined): boolean {
  return Boolean(limits && (limits.memoryMb !== undefined || limits.cpus !== undefined || limits.network));
}
