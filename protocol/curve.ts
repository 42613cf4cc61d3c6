import * as zmq from 'zeromq';
import { ConfigError, envBool, isLoopback } from './config';

/**
 * CURVE encryption of the platform's ZeroMQ channels, for when they leave the machine. The two
 * servers (db-service and the api's worker channel) hold the cluster's key pair,
 * FAAS_CURVE_PUBLIC_KEY and FAAS_CURVE_SECRET_KEY (Z85, from `faas curve-keypair`); every client is
 * given the public key and makes a key pair of its own. A server with keys refuses plain-text peers.
 * Without keys the endpoints must be on loopback unless FAAS_ALLOW_INSECURE_ZMQ=true.
 */
interface CurveSocketOptions {
  curveServer?: boolean;
  curvePublicKey?: string;
  curveSecretKey?: string;
  curveServerKey?: string;
}

export interface CurveConfig {
  publicKey: string;
  secretKey?: string;
}

const Z85_KEY = /^[0-9a-zA-Z.\-:+=^!/*?&<>()[\]{}@%$#]{40}$/;

export function loadCurveConfig(env: NodeJS.ProcessEnv = process.env, role: 'server' | 'client'): CurveConfig | undefined {
  const publicKey = env.FAAS_CURVE_PUBLIC_KEY;
  const secretKey = env.FAAS_CURVE_SECRET_KEY;
  if (!publicKey && !secretKey) return undefined;
  if (!publicKey || !Z85_KEY.test(publicKey)) throw new ConfigError('FAAS_CURVE_PUBLIC_KEY must be a 40-character Z85 key (make a pair with `faas curve-keypair`)');
  if (role === 'server' && (!secretKey || !Z85_KEY.test(secretKey))) {
    throw new ConfigError('FAAS_CURVE_SECRET_KEY must be a 40-character Z85 key, the secret half of FAAS_CURVE_PUBLIC_KEY');
  }
  return role === 'server' ? { publicKey, secretKey } : { publicKey };
}

/** Refuses a plain-text endpoint that other machines can reach. */
export function checkExposure(name: string, endpoint: string, curve: CurveConfig | undefined, env: NodeJS.ProcessEnv = process.env): void {
  if (curve || envBool(env, 'FAAS_ALLOW_INSECURE_ZMQ', false)) return;
  const host = /^tcp:\/\/(\[[^\]]+\]|[^:]+):/.exec(endpoint)?.[1];
  if (host !== undefined && !isLoopback(host)) {
    throw new ConfigError(
      `${name}=${endpoint} is reachable from other machines without encryption: set FAAS_CURVE_PUBLIC_KEY and FAAS_CURVE_SECRET_KEY, bind a loopback address, or set FAAS_ALLOW_INSECURE_ZMQ=true`,
    );
  }
}

/** Socket options of a server (ROUTER) socket. */
export function serverCurveOptions(env: NodeJS.ProcessEnv = process.env): CurveSocketOptions {
  const curve = loadCurveConfig(env, 'server');
  return curve ? { curveServer: true, curvePublicKey: curve.publicKey, curveSecretKey: curve.secretKey! } : {};
}

/** Socket options of a client (DEALER) socket: the server's public key and a key pair of its own. */
export function clientCurveOptions(env: NodeJS.ProcessEnv = process.env): CurveSocketOptions {
  const curve = loadCurveConfig(env, 'client');
  if (!curve) return {};
  const own = zmq.curveKeyPair();
  return { curveServerKey: curve.publicKey, curvePublicKey: own.publicKey, curveSecretKey: own.secretKey };
}
