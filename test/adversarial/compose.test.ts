import { execFileSync, spawnSync } from 'node:child_process';
import path from 'node:path';
import { parse } from 'yaml';
import { loadApiConfig } from '../../api/config';
import { loadDbConfig } from '../../db-service/config';
import { composeCommand } from '../cluster/compose';

/**
 * The compose file's defaults are safe: published on the host's loopback the cluster starts as it is;
 * published beyond it (FAAS_API_PUBLISH, FAAS_WORKER_PUBLISH, FAAS_DB_PUBLISH) without users or CURVE
 * keys, the processes refuse to start, as they do when they bind such an address themselves.
 */

const PROJECT_ROOT = path.resolve(__dirname, '..', '..');

type Environment = Record<string, string>;

/** The environment compose gives each service, resolved from the compose files and `vars`. */
function composeEnvironment(vars: Environment = {}): Record<'api' | 'db-service' | 'worker', Environment> {
  const [command, ...args] = composeCommand();
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, ...vars };
  const text = execFileSync(command!, [...args, '-f', 'docker-compose.yml', '-f', 'docker-compose.override.yml', 'config'], { cwd: PROJECT_ROOT, env, encoding: 'utf8' });
  const services = (parse(text) as { services: Record<string, { environment?: Record<string, string | number | null> }> }).services;
  // `config` writes a literal $ as $$, so that its output reads back the same.
  const environment = (name: string): Environment =>
    Object.fromEntries(Object.entries(services[name]?.environment ?? {}).map(([k, v]) => [k, v === null || v === undefined ? '' : String(v).replace(/\$\$/g, '$')]));
  return { api: environment('api'), 'db-service': environment('db-service'), worker: environment('worker') };
}

/** Starts a real process with `env` and returns how it ended: a refused configuration exits 2 at once. */
function refusesToStart(service: 'api' | 'db-service', env: Environment): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, [path.join(PROJECT_ROOT, 'dist', service, 'main.js')], {
    env: { PATH: process.env.PATH, ...env, FAAS_DB_DIR: '/nonexistent/never-made', FAAS_API_DATA_DIR: '/nonexistent/never-made' },
    timeout: 15_000,
    encoding: 'utf8',
  });
  return { status: result.status, stderr: result.stderr };
}

describe('adversarial: the compose file starts closed', () => {
  test('by default nothing is allowed unauthenticated or unencrypted, and every port is published on loopback', () => {
    const env = composeEnvironment();
    expect(env.api.FAAS_ALLOW_UNAUTHENTICATED).toBe('false');
    expect(env.api.FAAS_ALLOW_INSECURE_ZMQ).toBe('false');
    expect(env['db-service'].FAAS_ALLOW_INSECURE_ZMQ).toBe('false');
    expect(env.api.FAAS_API_PUBLISHED).toMatch(/^127\.0\.0\.1:/);
    expect(env.api.FAAS_WORKER_PUBLISHED).toMatch(/^127\.0\.0\.1:/);
    expect(env['db-service'].FAAS_DB_PUBLISHED).toMatch(/^127\.0\.0\.1:/);
    // Published on loopback, the defaults are a valid configuration (binding every interface of the container).
    expect(() => loadApiConfig(env.api)).not.toThrow();
    expect(() => loadDbConfig(env['db-service'])).not.toThrow();
  });

  test('the api published on every interface without users refuses to start', () => {
    const env = composeEnvironment({ FAAS_API_PUBLISH: '0.0.0.0:3000' });
    expect(env.api.FAAS_API_PUBLISHED).toBe('0.0.0.0:3000');
    expect(() => loadApiConfig(env.api)).toThrow(/FAAS_API_PUBLISHED.*without a password/);
    const { status, stderr } = refusesToStart('api', env.api);
    expect(status).toBe(2);
    expect(stderr).toContain('FAAS_AUTH_USERS');
  });

  test('a port given without an address is published on every interface, and refused the same way', () => {
    const env = composeEnvironment({ FAAS_API_PUBLISH: '3000' });
    expect(() => loadApiConfig(env.api)).toThrow(/without a password/);
  });

  test('the worker socket published wider without CURVE keys refuses to start', () => {
    const env = composeEnvironment({ FAAS_WORKER_PUBLISH: '0.0.0.0:5556' });
    expect(() => loadApiConfig(env.api)).toThrow(/FAAS_WORKER_PUBLISHED.*without encryption/);
  });

  test('db-service published wider without CURVE keys refuses to start', () => {
    const env = composeEnvironment({ FAAS_DB_PUBLISH: '[::]:5555' });
    const { status, stderr } = refusesToStart('db-service', env['db-service']);
    expect(status).toBe(2);
    expect(stderr).toContain('FAAS_CURVE_PUBLIC_KEY');
  });

  test('an operator who means it can still open it: users for the api, or the explicit switch', () => {
    const withUsers = composeEnvironment({ FAAS_API_PUBLISH: '0.0.0.0:3000', FAAS_AUTH_USERS: 'alice:scrypt$c2FsdHNhbHRzYWx0c2FsdA==$' + 'A'.repeat(43) + '=' });
    expect(() => loadApiConfig(withUsers.api)).not.toThrow();
    const explicit = composeEnvironment({ FAAS_API_PUBLISH: '0.0.0.0:3000', FAAS_ALLOW_UNAUTHENTICATED: 'true' });
    expect(() => loadApiConfig(explicit.api)).not.toThrow();
  });
});
