import { loadApiConfig } from '../../api/config';
import { ConfigError } from '../../protocol/config';
import { loadWorkerConfig } from '../../worker/config';

describe('config', () => {
  test('defaults are the documented ones', () => {
    const api = loadApiConfig({});
    expect(api).toMatchObject({ host: '127.0.0.1', port: 3000, dbEndpoint: 'tcp://127.0.0.1:5555', workerEndpoint: 'tcp://127.0.0.1:5556' });
    expect(loadWorkerConfig({ FAAS_NODE_ID: 'n1' })).toMatchObject({ capacity: 8, callTimeoutMs: 60_000, platformLabel: 'faas', preload: 'function', keepAliveMs: 300_000 });
  });
  test.each([
    [{ FAAS_API_PORT: 'abc' }, /FAAS_API_PORT must be an integer/],
    [{ FAAS_API_PORT: '70000' }, /at most 65535/],
    [{ FAAS_DB_ENDPOINT: 'localhost:5555' }, /ZeroMQ endpoint/],
    [{ FAAS_WAIT_TIMEOUT_MS: '0' }, /at least 1/],
  ])('a bad api value %j refuses to start', (env, message) => {
    expect(() => loadApiConfig(env)).toThrow(ConfigError);
    expect(() => loadApiConfig(env)).toThrow(message);
  });
  test.each([
    [{ FAAS_WORKER_CAPACITY: '0' }, /FAAS_WORKER_CAPACITY/],
    [{ FAAS_PLATFORM_LABEL: 'Bad Label' }, /FAAS_PLATFORM_LABEL/],
    [{ FAAS_API_URL: 'ftp://x' }, /FAAS_API_URL/],
    [{ FAAS_NODE_ID: '../etc' }, /FAAS_NODE_ID/],
    [{ FAAS_PRELOAD: 'always' }, /FAAS_PRELOAD must be one of none, runtime, function/],
  ])('a bad worker value %j refuses to start', (env, message) => {
    expect(() => loadWorkerConfig({ FAAS_NODE_ID: 'n1', ...env })).toThrow(message);
  });
});
