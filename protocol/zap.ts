import { createHmac, createPrivateKey, createPublicKey, diffieHellman, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import * as zmq from 'zeromq';
import { ConfigError } from './config';
import { PlatformError } from './errors';
import type { Logger } from './log';

/**
 * Trusted peers on the CURVE sockets. Two halves:
 *
 * - A ZAP handler (ZeroMQ RFC 27): libzmq asks it, over `inproc://zeromq.zap.01` in the same
 *   context, whether a client key may finish its CURVE handshake on a server socket; the socket's
 *   `zapDomain` names which allow-list applies. A refusal closes the connection before any message.
 *
 * - Roles at db-service. libzmq's ZAP request does not say which connection it is about (its
 *   identity frame carries the server socket's own routing id, libzmq issue #4161) and zeromq.js
 *   does not expose message metadata such as `User-Id` (zeromq.js issue #327), so the ZAP verdict
 *   cannot be tied to the routing id the ROUTER sees. Instead a db client chooses a routing id that
 *   proves its key: its public key, a nonce, and an HMAC of the nonce under the X25519 secret it
 *   shares with the server. Only the holder of that key's secret (or the server) can make it; it
 *   travels inside the encrypted handshake, and the fresh nonce keeps two processes with one key
 *   apart. db-service reads the role from the allow-list entry of the proven key.
 */

export const PEER_ROLES = ['api', 'worker', 'miniworker'] as const;
export type PeerRole = (typeof PEER_ROLES)[number];

/** Roles that may finish a handshake on each server socket. */
export const ZAP_DOMAINS = {
  db: ['api', 'worker', 'miniworker'],
  workers: ['worker'],
} as const satisfies Record<string, readonly PeerRole[]>;
export type ZapDomain = keyof typeof ZAP_DOMAINS;

const NODE_ROLES: readonly PeerRole[] = ['worker', 'miniworker'];

/**
 * db-service operations open to roles other than the api (the api may do everything). An operation
 * not listed here is the api's alone: a worker gets FORBIDDEN.
 */
export const DB_OPERATION_ROLES: Readonly<Record<string, readonly PeerRole[]>> = {
  ping: NODE_ROLES,
  getRuntime: NODE_ROLES,
  listRuntimes: NODE_ROLES,
  getFunction: NODE_ROLES,
  listFunctions: NODE_ROLES,
  listFunctionVersions: NODE_ROLES,
  getFunctionVersion: NODE_ROLES,
  getCall: NODE_ROLES,
  putOutputs: NODE_ROLES,
  startCall: NODE_ROLES,
  finishCall: NODE_ROLES,
  finishCalls: NODE_ROLES,
  failCall: NODE_ROLES,
  // A node starts the containers of functions that use secrets (a miniworker process asks itself).
  getSecretValues: NODE_ROLES,
};

export function roleMay(role: PeerRole, operation: string): boolean {
  return role === 'api' || (Object.hasOwn(DB_OPERATION_ROLES, operation) && DB_OPERATION_ROLES[operation]!.includes(role));
}

// ---- Z85 keys --------------------------------------------------------------------------------

const Z85_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';
const Z85_VALUE = new Map([...Z85_ALPHABET].map((c, i) => [c, i]));

/** The 32 bytes of a Z85 CURVE key, or undefined when it is not one. */
export function decodeZ85Key(key: string): Buffer | undefined {
  if (key.length !== 40) return undefined;
  const out = Buffer.alloc(32);
  for (let group = 0; group < 8; group++) {
    let value = 0;
    for (let i = 0; i < 5; i++) {
      const digit = Z85_VALUE.get(key[group * 5 + i]!);
      if (digit === undefined) return undefined;
      value = value * 85 + digit;
    }
    if (value > 0xffffffff) return undefined;
    out.writeUInt32BE(value, group * 4);
  }
  return out;
}

export function encodeZ85Key(bytes: Buffer): string {
  let out = '';
  for (let offset = 0; offset < bytes.length; offset += 4) {
    let value = bytes.readUInt32BE(offset);
    let group = '';
    for (let i = 0; i < 5; i++) {
      group = Z85_ALPHABET[value % 85]! + group;
      value = Math.floor(value / 85);
    }
    out += group;
  }
  return out;
}

export function isZ85Key(key: string): boolean {
  return decodeZ85Key(key) !== undefined;
}

// X25519 keys in the DER forms Node's crypto reads; CURVE keys are the same curve.
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_X25519 = Buffer.from('302a300506032b656e032100', 'hex');

function privateKeyOf(secretKey: string): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_X25519, decodeZ85Key(secretKey)!]), format: 'der', type: 'pkcs8' });
}

function publicKeyOf(publicKey: string): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_X25519, decodeZ85Key(publicKey)!]), format: 'der', type: 'spki' });
}

/** Whether publicKey is the public half of secretKey (both valid Z85 keys). */
export function isKeyPair(publicKey: string, secretKey: string): boolean {
  const derived = createPublicKey(privateKeyOf(secretKey)).export({ format: 'der', type: 'spki' }).subarray(-32);
  return derived.equals(decodeZ85Key(publicKey)!);
}

// ---- allow-list -------------------------------------------------------------------------------

/** Client public key (Z85) → role. */
export type AllowList = ReadonlyMap<string, PeerRole>;

/**
 * Reads an allow-list: entries separated by commas, spaces or newlines, each `role:KEY` (role
 * `api`, `worker` or `miniworker`) or a bare `KEY`, which means `worker`. `#` followed by a space
 * (or ending the line) starts a comment to the end of the line; Z85 keys may contain `#` but never
 * a space, so a key is never mistaken for a comment.
 */
export function parseAllowList(text: string, source: string): Map<string, PeerRole> {
  const allowed = new Map<string, PeerRole>();
  text.split(/\r?\n/).forEach((rawLine, index) => {
    const line = rawLine.replace(/(^|\s)#(\s.*)?$/, '');
    for (const entry of line.split(/[\s,]+/).filter(Boolean)) {
      const where = source.includes('FILE') ? `${source} line ${index + 1}` : source;
      let role: string = 'worker';
      let key = entry;
      if (entry.length !== 40) {
        const colon = entry.indexOf(':');
        if (colon < 0) throw new ConfigError(`${where}: "${entry}" is not a 40-character Z85 key nor role:key`);
        role = entry.slice(0, colon);
        key = entry.slice(colon + 1);
      }
      if (!(PEER_ROLES as readonly string[]).includes(role)) {
        throw new ConfigError(`${where}: unknown role "${role}" (use ${PEER_ROLES.map((r) => `${r}:KEY`).join(', ')})`);
      }
      if (!isZ85Key(key)) {
        throw new ConfigError(`${where}: "${key}" is not a CURVE public key (40 Z85 characters, from \`faas curve-keypair\`)`);
      }
      const before = allowed.get(key);
      if (before && before !== role) throw new ConfigError(`${where}: key ${key} is listed as both ${before} and ${role}`);
      allowed.set(key, role as PeerRole);
    }
  });
  return allowed;
}

// ---- routing ids that prove a key -------------------------------------------------------------

const PROOF_TAG = 'faas1';

function proofMac(shared: Buffer, nonce: string): string {
  return createHmac('sha256', shared).update(`faas db peer ${nonce}`).digest('hex').slice(0, 32);
}

/** A routing id for a db client: `faas1_<public key>_<nonce>_<mac>`, unique per socket. */
export function provenRoutingId(client: { publicKey: string; secretKey: string }, serverPublicKey: string): string {
  const nonce = randomBytes(8).toString('hex');
  const shared = diffieHellman({ privateKey: privateKeyOf(client.secretKey), publicKey: publicKeyOf(serverPublicKey) });
  return `${PROOF_TAG}_${client.publicKey}_${nonce}_${proofMac(shared, nonce)}`;
}

/** The public key a routing id proves, checked with the server's secret key, or undefined. */
export function provenKey(routingId: string, serverSecretKey: string): string | undefined {
  const match = /^faas1_(.{40})_([0-9a-f]{16})_([0-9a-f]{32})$/.exec(routingId);
  if (!match || !isZ85Key(match[1]!)) return undefined;
  const [, key, nonce, mac] = match as unknown as [string, string, string, string];
  const shared = diffieHellman({ privateKey: privateKeyOf(serverSecretKey), publicKey: publicKeyOf(key) });
  const expected = Buffer.from(proofMac(shared, nonce));
  return timingSafeEqual(expected, Buffer.from(mac)) ? key : undefined;
}

/** Who db-service's peers are: with CURVE, the role of the key each routing id proves. */
export class PeerRoles {
  private readonly known = new Map<string, PeerRole | null>();

  constructor(
    private readonly allowed: AllowList,
    private readonly serverSecretKey: string,
  ) {}

  roleOf(identity: Buffer): PeerRole | undefined {
    const routingId = identity.toString('latin1');
    let role = this.known.get(routingId);
    if (role === undefined) {
      const key = provenKey(routingId, this.serverSecretKey);
      role = (key && this.allowed.get(key)) || null;
      if (this.known.size >= 4096) this.known.clear();
      this.known.set(routingId, role);
    }
    return role ?? undefined;
  }
}

let dbPeers: PeerRoles | undefined;

/** Set by the db server's socket options: with CURVE the roles, without it none (loopback trust). */
export function useDbPeerRoles(peers: PeerRoles | undefined): void {
  dbPeers = peers;
}

/**
 * The role of the db peer with this routing id, when it may make this request; otherwise FORBIDDEN.
 * Without CURVE every peer is local (the endpoint is refused beyond loopback) and counts as the api.
 */
export function authorize(identity: Buffer, operation: string): PeerRole {
  if (!dbPeers) return 'api';
  const role = dbPeers.roleOf(identity);
  if (!role) {
    throw new PlatformError(
      'FORBIDDEN',
      'this peer did not prove an allowed key: give the process its key pair (FAAS_CURVE_CLIENT_PUBLIC_KEY, FAAS_CURVE_CLIENT_SECRET_KEY) and list the public key in FAAS_CURVE_ALLOWED_KEYS',
    );
  }
  if (!roleMay(role, operation)) throw new PlatformError('FORBIDDEN', `a ${role} may not ${operation}`);
  return role;
}

// ---- the ZAP handler --------------------------------------------------------------------------

const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';
const LOG_EVERY_MS = 60_000;

interface DomainPolicy {
  allowed: AllowList;
  roles: readonly PeerRole[];
  /** The cluster's own key: its holder could be the server, so it is let in everywhere. */
  clusterKey?: string;
}

/** One per process (ZAP is per ZeroMQ context): answers every CURVE handshake on every server socket. */
export class ZapHandler {
  private static running?: ZapHandler;
  private readonly socket = new zmq.Reply({ linger: 0 });
  private readonly domains = new Map<string, DomainPolicy>();
  private readonly lastLogged = new Map<string, number>();
  private loop?: Promise<void>;
  private closed = false;
  /** Handshakes refused, per domain. */
  readonly refusals = new Map<string, number>();
  accepted = 0;

  private constructor(private readonly log: Logger) {}

  static current(): ZapHandler | undefined {
    return ZapHandler.running;
  }

  /** Binds the handler in the default context, once per process. */
  static async start(log: Logger): Promise<ZapHandler> {
    if (ZapHandler.running) return ZapHandler.running;
    const handler = new ZapHandler(log);
    ZapHandler.running = handler;
    try {
      await handler.socket.bind(ZAP_ENDPOINT);
    } catch (err) {
      ZapHandler.running = undefined;
      handler.socket.close();
      throw err;
    }
    handler.loop = handler.serve();
    return handler;
  }

  /** The allow-list a server socket with this zapDomain uses. */
  allow(domain: ZapDomain, allowed: AllowList, clusterKey?: string): void {
    this.domains.set(domain, { allowed, roles: ZAP_DOMAINS[domain], clusterKey });
  }

  get refused(): number {
    let total = 0;
    for (const count of this.refusals.values()) total += count;
    return total;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (ZapHandler.running === this) ZapHandler.running = undefined;
    this.socket.close();
    await this.loop?.catch(() => undefined);
  }

  private async serve(): Promise<void> {
    try {
      for await (const request of this.socket) {
        // REP: every request gets a reply, or the socket would wait for one forever.
        await this.socket.send(this.answer(request));
      }
    } catch (err) {
      if (!this.closed) this.log.error({ err: String(err) }, 'ZAP handler stopped: CURVE handshakes will stall');
    }
  }

  private answer(frames: Buffer[]): Array<string | Buffer> {
    const [version, requestId = Buffer.alloc(0), domainFrame, addressFrame, , mechanismFrame, credentials] = frames;
    const reply = (status: '200' | '400' | '500', text: string, userId = '') => ['1.0', requestId, status, text, userId, Buffer.alloc(0)];
    if (version?.toString() !== '1.0') return reply('500', 'unsupported ZAP version');
    const domain = domainFrame?.toString() ?? '';
    const address = addressFrame?.toString() ?? '';
    const policy = this.domains.get(domain);
    const key = mechanismFrame?.toString() === 'CURVE' && credentials?.length === 32 ? encodeZ85Key(credentials) : undefined;
    const role = key ? policy?.allowed.get(key) : undefined;
    if (policy && key && ((role && policy.roles.includes(role)) || key === policy.clusterKey)) {
      this.accepted++;
      return reply('200', 'OK', key);
    }
    this.refusals.set(domain, (this.refusals.get(domain) ?? 0) + 1);
    const why = !policy ? 'no allow-list for this socket' : !key ? 'not a CURVE handshake' : role ? `role ${role} may not connect here` : 'key not on the allow-list';
    this.logRefusal(domain, address, key, why);
    return reply('400', why);
  }

  /** At most one line a minute per domain, address and key: a scanner must not flood the log. */
  private logRefusal(domain: string, address: string, key: string | undefined, why: string): void {
    const tag = `${domain}|${address}|${key ?? ''}`;
    const now = Date.now();
    if (now - (this.lastLogged.get(tag) ?? 0) < LOG_EVERY_MS) return;
    if (this.lastLogged.size >= 1000) this.lastLogged.clear();
    this.lastLogged.set(tag, now);
    this.log.warn({ domain, address, clientKey: key, why, refusals: this.refusals.get(domain) }, 'CURVE handshake refused');
  }
}
