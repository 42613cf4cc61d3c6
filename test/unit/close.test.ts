import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadApiConfig } from '../../api/config';
import { Platform } from '../../api/platform';
import { WorkerHub } from '../../api/worker-hub';
import { DbServer } from '../../db-service/server';
import { PlatformStore } from '../../db-service/store';
import { DbClient } from '../../protocol/db-client';
import { MiniworkerPool } from '../../worker/miniworker-pool';
import { until } from '../helpers/until';

/** close() twice, one after the other and both at once, on the process objects that need no Docker. */
const log = pino({ level: 'silent' });
let dir = '';

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'faas-close-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('close() twice', () => {
  test('MiniworkerPool: a second close waits for the first, and every miniworker is gone when either resolves', async () => {
    // Miniworkers that note their pid and ignore SIGTERM, so the pool has to wait out its grace and kill them.
    const script = path.join(dir, 'stubborn.js');
    writeFileSync(script, `require('fs').writeFileSync(require('path').join(${JSON.stringify(dir)}, 'pid-' + process.pid), ''); process.on('SIGTERM', () => {}); setInterval(() => {}, 1000);\n`);
    const pool = new MiniworkerPool({ endpoint: `ipc://${path.join(dir, 'mw.sock')}`, minSize: 2, maxSize: 2, keepAliveMs: 60_000, idleExitMs: 60_000, script, env: {}, log, stopGraceMs: 300 });
    await pool.start();
    const pids = await until(
      async () => (existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith('pid-')).map((f) => Number(f.slice(4))) : []),
      (found) => found.length === 2,
      30_000,
      'two miniworkers started',
    );
    const first = pool.close();
    const second = pool.close();
    expect(await second).toEqual([]);
    expect(pids.filter(alive)).toEqual([]);
    expect(await first).toBe(await second);
    expect(await pool.close()).toEqual([]);
    expect(pool.size).toBe(0);
  });

  test('WorkerHub: bound or not, twice in a row and twice at once', async () => {
    const snapshot = async () => ({ runtimes: [], functions: [] });
    const bound = new WorkerHub({ heartbeatMs: 1000, liveness: 3, snapshot, log });
    expect(await bound.bind('tcp://127.0.0.1:*')).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    await Promise.all([bound.close(), bound.close()]);
    await expect(bound.close()).resolves.toBeUndefined();
    const never = new WorkerHub({ heartbeatMs: 1000, liveness: 3, snapshot, log });
    await never.close();
    await expect(never.close()).resolves.toBeUndefined();
  });

  test('DbServer and PlatformStore: twice at once, and the store can be opened again after', async () => {
    const store = await PlatformStore.open(path.join(dir, 'db'));
    const server = new DbServer(store, log);
    await server.bind('tcp://127.0.0.1:*');
    await Promise.all([server.close(), server.close()]);
    await server.close();
    await Promise.all([store.close(), store.close()]);
    await store.close();
    // LevelDB holds a lock on its folder until it is really closed.
    const again = await PlatformStore.open(path.join(dir, 'db'));
    await again.close();
  });

  test('DbClient: close rejects what waits, twice is a no-op, and a request after it is refused', async () => {
    const client = new DbClient('tcp://127.0.0.1:1', { timeoutMs: 60_000 }).start();
    const waiting = client.ping();
    client.close();
    client.close();
    await expect(waiting).rejects.toMatchObject({ code: 'DB_UNAVAILABLE' });
    await expect(client.ping()).rejects.toMatchObject({ code: 'DB_UNAVAILABLE' });
  });

  test('the api Platform: started against a real db-service on loopback, closed twice at once and once more', async () => {
    const store = await PlatformStore.open(path.join(dir, 'db'));
    const server = new DbServer(store, log);
    const dbEndpoint = await server.bind('tcp://127.0.0.1:*');
    try {
      const config = loadApiConfig({ FAAS_DB_ENDPOINT: dbEndpoint, FAAS_WORKER_ENDPOINT: 'tcp://127.0.0.1:*', FAAS_API_DATA_DIR: path.join(dir, 'api') });
      const platform = new Platform(config, log);
      expect(await platform.start()).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
      await Promise.all([platform.close(), platform.close()]);
      await expect(platform.close()).resolves.toBeUndefined();
    } finally {
      await server.close();
      await store.close();
    }
  });
});

