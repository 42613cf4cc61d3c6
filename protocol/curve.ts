import { readFileSync } from 'node:fs';
import { ConfigError, envBool, onlyLocal } from './config';
import type { Logger } from './log';
import { PeerRoles, ZapHandler, isKeyPair, isZ85Key, parseAllowList, provenRoutingId, useDbPeerRoles, type AllowList, type PeerRole, type ZapDomain } from './zap';

/**
 * CURVE encryption and authentication of the platform's ZeroMQ channels, for when they leave the
 * machine. The two servers (db-service and the api's worker channel) hold the cluster's key pair,
 * FAAS_CURVE_PUBLIC_KEY and FAAS_CURVE_SECRET_KEY (Z85, from `faas curve-keypair`), and accept only
 * client keys on the allow-list (FAAS_CURVE_ALLOWED_KEYS and/or FAAS_CURVE_ALLOWED_KEYS_FILE,
 * `role:KEY` entries, see protocol/zap.ts). Every worker is given the cluster's public key and its own
 * key pair, FAAS_CURVE_CLIENT_PUBLIC_KEY and FAAS_CURVE_CLIENT_SECRET_KEY; a process that holds the
 * cluster's secret key (the api, db-service's healthcheck) uses the cluster pair as its own, and the
 * cluster key is always let in (as `api` at db-service): whoever holds its secret can be the server anyway.
 * Without keys the endpoints must be on loopback unless FAAS_ALLOW_INSECURE_ZMQ=true.
 */
interface CurveSocketOptions {
  curveServer?: boolean;
  curvePublicKey?: string;
  curveSecretKey?: string;
  curveServerKey?: string;
  zapDomain?: string;
  zapEnforceDomain?: boolean;
  routingId?: string;
}

export interface KeyPair {
  publicKey: string;
  secretKey: string;
}

export interface CurveConfig {
  /** The cluster's public key (the servers' key). */
  publicKey: string;
  /** The cluster's secret key, held by the servers. */
  secretKey?: string;
  /** This process's key pair as a client. */
  client?: KeyPair;
  /** Servers: who may connect (always holds the cluster key as `api`). */
  allowed?: AllowList;
}

const MAKE_KEYS = 'make a pair with `faas curve-keypair`';

function keyFrom(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  if (!value) return undefined;
  if (!isZ85Key(value)) throw new ConfigError(`${name} must be a 40-character Z85 key (${MAKE_KEYS})`);
  return value;
}

/**
 * A process holding the cluster's secret (the api, db-service's healthcheck, every process of a
 * one-machine `faas up`) connects with the cluster pair: it could be the server anyway, and one
 * environment shared by all processes then still gives the api its role. Others use their own pair.
 */
function clientPair(env: NodeJS.ProcessEnv, cluster: { publicKey: string; secretKey?: string }): KeyPair | undefined {
  const publicKey = keyFrom(env, 'FAAS_CURVE_CLIENT_PUBLIC_KEY');
  const secretKey = keyFrom(env, 'FAAS_CURVE_CLIENT_SECRET_KEY');
  if (publicKey && secretKey) {
    if (!isKeyPair(publicKey, secretKey)) throw new ConfigError('FAAS_CURVE_CLIENT_PUBLIC_KEY is not the public half of FAAS_CURVE_CLIENT_SECRET_KEY');
  } else if (publicKey || secretKey) {
    throw new ConfigError('FAAS_CURVE_CLIENT_PUBLIC_KEY and FAAS_CURVE_CLIENT_SECRET_KEY go together: give both halves of the pair');
  }
  if (cluster.secretKey) return { publicKey: cluster.publicKey, secretKey: cluster.secretKey };
  return publicKey && secretKey ? { publicKey, secretKey } : undefined;
}

function allowListFrom(env: NodeJS.ProcessEnv, clusterKey: string): Map<string, PeerRole> {
  const allowed = new Map<string, PeerRole>();
  const add = (entries: Map<string, PeerRole>) => {
    for (const [key, role] of entries) {
      if (allowed.has(key) && allowed.get(key) !== role) throw new ConfigError(`key ${key} is listed as both ${allowed.get(key)} and ${role}`);
      allowed.set(key, role);
    }
  };
  if (env.FAAS_CURVE_ALLOWED_KEYS) add(parseAllowList(env.FAAS_CURVE_ALLOWED_KEYS, 'FAAS_CURVE_ALLOWED_KEYS'));
  const file = env.FAAS_CURVE_ALLOWED_KEYS_FILE;
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`FAAS_CURVE_ALLOWED_KEYS_FILE=${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    add(parseAllowList(text, 'FAAS_CURVE_ALLOWED_KEYS_FILE'));
  }
  if (allowed.size === 0) {
    throw new ConfigError(
      'with CURVE keys set, FAAS_CURVE_ALLOWED_KEYS or FAAS_CURVE_ALLOWED_KEYS_FILE must list the client keys that may connect (worker:KEY, api:KEY, miniworker:KEY; `faas curve-keypair --client` makes a pair); otherwise anyone with the public key would be a full peer',
    );
  }
  if (allowed.has(clusterKey) && allowed.get(clusterKey) !== 'api') throw new ConfigError('the cluster key FAAS_CURVE_PUBLIC_KEY is always the api; it cannot be listed as another role');
  allowed.set(clusterKey, 'api');
  return allowed;
}

export function loadCurveConfig(env: NodeJS.ProcessEnv = process.env, role: 'server' | 'client'): CurveConfig | undefined {
  if (!env.FAAS_CURVE_PUBLIC_KEY && !env.FAAS_CURVE_SECRET_KEY) return undefined;
  const publicKey = keyFrom(env, 'FAAS_CURVE_PUBLIC_KEY');
  if (!publicKey) throw new ConfigError(`FAAS_CURVE_PUBLIC_KEY must be a 40-character Z85 key (${MAKE_KEYS})`);
  const secretKey = keyFrom(env, 'FAAS_CURVE_SECRET_KEY');
  if (role === 'server' && !secretKey) throw new ConfigError('FAAS_CURVE_SECRET_KEY must be a 40-character Z85 key, the secret half of FAAS_CURVE_PUBLIC_KEY');
  if (secretKey && !isKeyPair(publicKey, secretKey)) throw new ConfigError('FAAS_CURVE_PUBLIC_KEY is not the public half of FAAS_CURVE_SECRET_KEY');
  const client = clientPair(env, { publicKey, secretKey });
  if (role === 'client' && !client) {
    throw new ConfigError(
      'with CURVE on, this process needs its own key pair: set FAAS_CURVE_CLIENT_PUBLIC_KEY and FAAS_CURVE_CLIENT_SECRET_KEY (`faas curve-keypair --client`) and add its public key to the servers\' FAAS_CURVE_ALLOWED_KEYS',
    );
  }
  if (role === 'client') return { publicKey, client };
  return { publicKey, secretKey, client, allowed: allowListFrom(env, publicKey) };
}

/** Refuses a plain-text endpoint that other machines can reach. */
export function checkExposure(name: string, endpoint: string, curve: CurveConfig | undefined, env: NodeJS.ProcessEnv = process.env): void {
  if (curve || envBool(env, 'FAAS_ALLOW_INSECURE_ZMQ', false)) return;
  const host = /^tcp:\/\/(\[[^\]]+\]|[^:]+):/.exec(endpoint)?.[1];
  const publishedVar = name.replace(/_ENDPOINT$/, '_PUBLISHED');
  if (host !== undefined && !onlyLocal(host, env, publishedVar)) {
    const where = env[publishedVar] ? `${name}=${endpoint} published on ${env[publishedVar]} (${publishedVar})` : `${name}=${endpoint}`;
    throw new ConfigError(
      `${where} is reachable from other machines without encryption: set FAAS_CURVE_PUBLIC_KEY and FAAS_CURVE_SECRET_KEY, bind or publish on a loopback address, or set FAAS_ALLOW_INSECURE_ZMQ=true`,
    );
  }
}

/**
 * Starts the process's ZAP handler when CURVE is on; a server process awaits this before it makes
 * its server sockets (without a handler libzmq would let every key in).
 */
export async function startZap(log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<ZapHandler | undefined> {
  if (!loadCurveConfig(env, 'server')) return undefined;
  return ZapHandler.start(log);
}

/**
 * Socket options of a server (ROUTER) socket, and the registration of its allow-list with the ZAP
 * handler under this domain: `db` lets in every listed key (db-service then checks each request
 * against the key's role), `workers` only `worker` keys.
 */
export function serverCurveOptions(env: NodeJS.ProcessEnv, domain: ZapDomain): CurveSocketOptions {
  const curve = loadCurveConfig(env, 'server');
  if (!curve) {
    if (domain === 'db') useDbPeerRoles(undefined);
    return {};
  }
  const zap = ZapHandler.current();
  if (!zap) throw new Error('a CURVE server socket needs the ZAP handler: await startZap() before making it');
  zap.allow(domain, curve.allowed!, curve.publicKey);
  if (domain === 'db') useDbPeerRoles(new PeerRoles(curve.allowed!, curve.secretKey!));
  // zapEnforceDomain: should the handler be gone, libzmq refuses every handshake instead of letting keys in.
  return { curveServer: true, curvePublicKey: curve.publicKey, curveSecretKey: curve.secretKey!, zapDomain: domain, zapEnforceDomain: true };
}

/**
 * Socket options of a client (DEALER) socket: the server's public key and this process's pair. With
 * proveKey (db clients), a routing id that proves the key, from which db-service reads the role.
 */
export function clientCurveOptions(env: NodeJS.ProcessEnv = process.env, { proveKey = false } = {}): CurveSocketOptions {
  const curve = loadCurveConfig(env, 'client');
  if (!curve) return {};
  const own = curve.client!;
  const options = { curveServerKey: curve.publicKey, curvePublicKey: own.publicKey, curveSecretKey: own.secretKey };
  return proveKey ? { ...options, routingId: provenRoutingId(own, curve.publicKey) } : options;
}

/** The public key this process shows as a CURVE client, for the operator's allow-list. */
export function clientPublicKey(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return loadCurveConfig(env, 'client')?.client?.publicKey;
}
