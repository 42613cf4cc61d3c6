import { curveKeyPair } from 'zeromq';
import { PEER_ROLES, type PeerRole } from '../../protocol/zap';
import { UsageError } from '../context';

/**
 * A new CURVE key pair as environment lines: the cluster's pair for db-service and the api, or with
 * a role a client's pair, followed by the allow-list entry the servers need for it.
 */
export function curveKeyPairText(role?: string): string {
  const pair = curveKeyPair();
  if (role === undefined) return `FAAS_CURVE_PUBLIC_KEY=${pair.publicKey}\nFAAS_CURVE_SECRET_KEY=${pair.secretKey}\n`;
  if (!(PEER_ROLES as readonly string[]).includes(role)) throw new UsageError(`--client takes a role: ${PEER_ROLES.join(', ')}; got "${role}"`);
  return [
    `FAAS_CURVE_CLIENT_PUBLIC_KEY=${pair.publicKey}`,
    `FAAS_CURVE_CLIENT_SECRET_KEY=${pair.secretKey}`,
    `# on db-service and the api, add to FAAS_CURVE_ALLOWED_KEYS (or a line of FAAS_CURVE_ALLOWED_KEYS_FILE):`,
    `# ${role as PeerRole}:${pair.publicKey}`,
    '',
  ].join('\n');
}
