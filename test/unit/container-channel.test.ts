import { existsSync, mkdtempSync, statSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ContainerChannel } from '../../miniworker/container-channel';

/** A container's channel socket against connections that are not its bootstrap's. */

const TOKEN = 'a1b2c3d4e5f6a1b2c3d4e5f6';

function connect(socketPath: string, hello: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath, () => {
      socket.write(hello);
      resolve(socket);
    });
    socket.on('error', reject);
  });
}

function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())));
}

function open(root: string) {
  const got = { frames: [] as string[], log: [] as string[], refused: [] as string[] };
  const pending = ContainerChannel.open(root, TOKEN, `${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}`, {
    frames: (chunk) => got.frames.push(chunk.toString()),
    log: (chunk) => got.log.push(chunk.toString()),
    refused: (reason) => got.refused.push(reason),
  });
  return { got, pending };
}

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met within 5 s');
    await new Promise((r) => setImmediate(r));
  }
}

describe('a container channel', () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'faas-ch-unit-'));

  test('takes one frames and one log connection that say the token, and nothing else', async () => {
    const { got, pending } = open(root);
    const channel = (await pending)!;
    const socketPath = path.join(channel.dir, 'channel.sock');
    expect(statSync(channel.dir).mode & 0o777).toBe(0o700);

    const stranger = await connect(socketPath, 'not-the-token frames\n');
    await closed(stranger);
    const babbler = await connect(socketPath, 'x'.repeat(4096));
    await closed(babbler);
    expect(got.refused).toEqual(['a connection without the token', 'a hello past its size']);
    expect(channel.connected).toBe(false);

    const frames = await connect(socketPath, `${TOKEN} frames\nfirst frame\n`);
    const log = await connect(socketPath, `${TOKEN} log\n`);
    await until(() => channel.connected && got.frames.join('') === 'first frame\n');
    const again = await connect(socketPath, `${TOKEN} frames\n`).catch(() => undefined);
    if (again) await closed(again);

    log.write('some log\n');
    await until(() => got.log.join('') === 'some log\n');
    const requests: string[] = [];
    frames.on('data', (chunk: Buffer) => requests.push(chunk.toString()));
    expect(channel.write('{"v":2}\n')).toBe(true);
    await until(() => requests.join('') === '{"v":2}\n');
    // The second frames connection was never adopted: the first still carries the frames.
    frames.write('second frame\n');
    await until(() => got.frames.join('') === 'first frame\nsecond frame\n');

    log.end();
    await channel.logDrained(5000);
    await channel.close();
    await channel.close();
    expect(existsSync(channel.dir)).toBe(false);
    await closed(frames);
    expect(channel.write('late\n')).toBe(false);
  });

  test('a folder path too long for a socket means no channel (the container speaks over attach)', async () => {
    const { pending } = open(path.join(root, 'x'.repeat(90)));
    expect(await pending).toBeUndefined();
  });
});
