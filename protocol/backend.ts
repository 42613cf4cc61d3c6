import { z } from 'zod';
import { int, oneOf, parseEnv } from './config';

/**
 * Which back-end a node's containers run on. `docker` is the platform: a real engine through
 * dockerode. `hollow` runs no container at all: images are "ready" after `prepareMs`, a container
 * "starts" in `startMs` and answers each call in `callMs` with its params as the result. It exists
 * to measure the control plane (api, db-service, ZeroMQ, scheduling) with many nodes on one machine,
 * as Kubernetes' kubemark hollow nodes do; it is never the default and a node on it says so loudly.
 */
export type BackendSettings = { name: 'docker' } | { name: 'hollow'; startMs: number; callMs: number; prepareMs: number };

export const backendEnv = z.object({
  FAAS_BACKEND: oneOf('docker', ['docker', 'hollow']),
  FAAS_HOLLOW_START_MS: int(200, { min: 0, max: 600_000 }),
  FAAS_HOLLOW_CALL_MS: int(1, { min: 0, max: 600_000 }),
  FAAS_HOLLOW_PREPARE_MS: int(0, { min: 0, max: 600_000 }),
});

export function backendSettings(e: z.output<typeof backendEnv>): BackendSettings {
  return e.FAAS_BACKEND === 'hollow' ? { name: 'hollow', startMs: e.FAAS_HOLLOW_START_MS, callMs: e.FAAS_HOLLOW_CALL_MS, prepareMs: e.FAAS_HOLLOW_PREPARE_MS } : { name: 'docker' };
}

/** A miniworker's back-end, from the environment its worker (which validated it) passed on. */
export function backendFromEnv(env: NodeJS.ProcessEnv = process.env): BackendSettings {
  return backendSettings(parseEnv(backendEnv, env));
}
