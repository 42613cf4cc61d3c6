import path from 'node:path';
import { ENDPOINT, ENDPOINT_HINT, optionalText, parseEnv, requiredText } from '../protocol/config';
import { workerEnv } from '../worker/config';

/**
 * A miniworker's environment. Its worker sets all of it: the channel and the id for each child,
 * and the node's settings that the miniworker shares (the same variables, with the same checks).
 */
export const miniworkerEnv = workerEnv.pick({ FAAS_LOG_LEVEL: true, FAAS_DB_ENDPOINT: true, FAAS_NODE_ID: true, FAAS_PLATFORM_LABEL: true }).extend({
  FAAS_MINIWORKER_ENDPOINT: requiredText('set by the worker', { pattern: ENDPOINT, hint: ENDPOINT_HINT }),
  FAAS_MINIWORKER_ID: requiredText('set by the worker'),
  FAAS_MINIWORKER_SECRETS_DIR: optionalText({ doc: "set by the worker: the node's secrets folder" }),
  FAAS_MINIWORKER_CHANNEL_DIR: optionalText({ doc: 'set by the worker: the node\'s channel folder, none for attach' }),
});

export interface MiniworkerConfig {
  /** The worker's ROUTER. */
  endpoint: string;
  /** This miniworker's routing id on it. */
  routingId: string;
  dbEndpoint: string;
  nodeId: string;
  platformLabel: string;
  /** This miniworker's folder of container channels, when the node uses them. */
  channelDir?: string;
  secretsDir?: string;
}

export function loadMiniworkerConfig(env: NodeJS.ProcessEnv = process.env): MiniworkerConfig {
  const e = parseEnv(miniworkerEnv, env);
  return {
    endpoint: e.FAAS_MINIWORKER_ENDPOINT,
    routingId: e.FAAS_MINIWORKER_ID,
    dbEndpoint: e.FAAS_DB_ENDPOINT,
    nodeId: e.FAAS_NODE_ID,
    platformLabel: e.FAAS_PLATFORM_LABEL,
    ...(e.FAAS_MINIWORKER_SECRETS_DIR ? { secretsDir: e.FAAS_MINIWORKER_SECRETS_DIR } : {}),
    ...(e.FAAS_MINIWORKER_CHANNEL_DIR ? { channelDir: path.join(e.FAAS_MINIWORKER_CHANNEL_DIR, e.FAAS_MINIWORKER_ID) } : {}),
  };
}
