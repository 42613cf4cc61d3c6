import { isLoopback } from './config';
import { parseImageRef } from './image-ref';

/**
 * The registries runtime images may come from. A pull makes the Docker engine of every node send
 * requests to the registry host in the image's name: left open, anyone who may register a runtime
 * could point the engines at any address and port their network reaches (a cloud's metadata
 * service, an internal admin port). Docker Hub (a name without a host) and registries on the node's
 * loopback are allowed; any other host only when the operator lists it in FAAS_ALLOWED_REGISTRIES.
 */
export interface RegistryPolicy {
  /** `*` in the list: every registry. */
  any: boolean;
  /** `host` or `host:port` entries, lower case. */
  hosts: Set<string>;
}

const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** FAAS_ALLOWED_REGISTRIES: `host[:port]` entries separated by commas, or `*`. */
export function registryPolicy(list: string): RegistryPolicy {
  const entries = list
    .split(',')
    .map((e) => e.trim().toLowerCase())
    .filter(Boolean);
  return { any: entries.includes('*'), hosts: new Set(entries) };
}

/** The host of a `host[:port]` registry, brackets kept for IPv6 as in image names. */
function hostOf(domain: string): string {
  const bracketed = /^(\[[^\]]+\])(?::\d+)?$/.exec(domain);
  if (bracketed) return bracketed[1]!;
  return domain.replace(/:\d+$/, '');
}

/** Why `image` may not be pulled under `policy`, or undefined when it may (or is not a reference: that check is elsewhere). */
export function registryRefusal(image: string, policy: RegistryPolicy): string | undefined {
  if (policy.any) return undefined;
  const parsed = parseImageRef(image);
  if (!parsed.ok || parsed.ref.domain === undefined) return undefined;
  const domain = parsed.ref.domain.toLowerCase();
  const host = hostOf(domain);
  if (DOCKER_HUB.has(host) || isLoopback(host) || policy.hosts.has(domain) || policy.hosts.has(host)) return undefined;
  return `the registry "${domain}" is not one this platform pulls from: Docker Hub and registries on loopback are, others once an operator lists them in FAAS_ALLOWED_REGISTRIES`;
}
