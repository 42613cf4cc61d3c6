/**
 * `npm run bench:auth`: what password guessing costs other users. Starts db-service and the api with
 * one user, measures that user's package downloads alone, then while 16 clients send wrong passwords
 * as fast as they are answered, and prints the medians, the guesses' answers and the scrypt runs.
 */
import path from 'node:path';
import { hashPassword } from '../api/auth';
import { DICE, tarGzOf } from '../test/helpers/archives';
import { TestPlatform } from '../test/helpers/platform';
import { median, percentile, round } from './stats';

const GUESSERS = 16;
const WINDOW_MS = 4000;

const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

async function main(): Promise<void> {
  const platform = await TestPlatform.start({ services: ['db', 'api'], env: { FAAS_AUTH_USERS: `alice:${await hashPassword('pw')}`, FAAS_LOG_LEVEL: 'warn' } });
  const good = basic('alice', 'pw');
  try {
    await platform.waitApi();
    const runtime = await fetch(`${platform.url}/registerRuntime`, {
      method: 'POST',
      headers: { ...good, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'py', image: 'pythonruntime', path: '/ws', dependencies: '', run: 'python3 main.py' }),
    });
    if (runtime.status !== 201) throw new Error(`registerRuntime answered ${runtime.status}`);
    const form = new FormData();
    form.append('module', new Blob([await tarGzOf(DICE)]), path.basename(DICE) + '.tar.gz');
    const fn = (await (await fetch(`${platform.url}/registerFunction/py/dice`, { method: 'POST', headers: good, body: form })).json()) as { version: string };

    const download = async (): Promise<number> => {
      const started = process.hrtime.bigint();
      const answer = await fetch(`${platform.url}/packages/${fn.version}`, { headers: good });
      await answer.arrayBuffer();
      if (answer.status !== 200) throw new Error(`a download answered ${answer.status}`);
      return Number(process.hrtime.bigint() - started) / 1e6;
    };
    const downloads = async (ms: number): Promise<number[]> => {
      const times: number[] = [];
      const end = Date.now() + ms;
      while (Date.now() < end) times.push(await download());
      return times;
    };

    const alone = await downloads(WINDOW_MS);
    let stop = false;
    const answers: Record<string, number> = {};
    const guessers = Array.from({ length: GUESSERS }, async (_, g) => {
      for (let n = 0; !stop; n += 1) {
        const answer = await fetch(`${platform.url}/functions`, { headers: basic('alice', `wrong-${g}-${n}`) });
        await answer.arrayBuffer();
        answers[answer.status] = (answers[answer.status] ?? 0) + 1;
      }
    });
    const guessing = await downloads(WINDOW_MS);
    stop = true;
    await Promise.all(guessers);
    const metrics = await (await fetch(`${platform.url}/metrics`, { headers: good })).text();
    const scrypt = Number(/^faas_auth_scrypt_total (\S+)/m.exec(metrics)?.[1] ?? NaN);
    const summary = {
      downloadsAlone: { count: alone.length, p50: round(median(alone), 2), p99: round(percentile(alone, 99), 2) },
      downloadsWhileGuessing: { count: guessing.length, p50: round(median(guessing), 2), p99: round(percentile(guessing, 99), 2) },
      guessAnswers: answers,
      scryptRuns: scrypt,
    };
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  } finally {
    await platform.stop();
  }
}

void main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
