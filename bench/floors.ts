import Docker from 'dockerode';
import { PassThrough } from 'node:stream';
import { requestJson } from './http';
import { median, since } from './stats';

const LABELS = { 'io.faas.platform': 'bench-floor' };

/** Raw `docker create` + `start` of a container from `image`, measured until start returns. */
export async function createStartFloor(docker: Docker, image: string, runs: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    const c = await docker.createContainer({ Image: image, Cmd: ['sleep', '60'], Labels: LABELS, HostConfig: { NetworkMode: 'none' } });
    await c.start();
    out.push(since(t));
    await c.remove({ force: true });
  }
  return out;
}

/** Raw `docker exec` of `true` in a running container, until it has ended. */
export async function execFloor(docker: Docker, image: string, runs: number): Promise<number[]> {
  const c = await docker.createContainer({ Image: image, Cmd: ['sleep', '600'], Labels: LABELS, HostConfig: { NetworkMode: 'none' } });
  await c.start();
  const out: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const t = process.hrtime.bigint();
      const exec = await c.exec({ Cmd: ['true'], AttachStdout: true, AttachStderr: true });
      const stream = await exec.start({ hijack: true, stdin: false });
      await new Promise<void>((resolve) => {
        stream.on('end', resolve);
        stream.on('close', resolve);
        stream.resume();
      });
      out.push(since(t));
    }
  } finally {
    await c.remove({ force: true });
  }
  return out;
}

/** A JSON line written to a running container's stdin and read back from its stdout (`cat`). */
export async function stdioFloor(docker: Docker, image: string, runs: number): Promise<number[]> {
  const c = await docker.createContainer({
    Image: image,
    Cmd: ['cat'],
    Labels: LABELS,
    OpenStdin: true,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    HostConfig: { NetworkMode: 'none' },
  });
  const stream = (await c.attach({ stream: true, stdin: true, stdout: true, stderr: true, hijack: true })) as NodeJS.ReadWriteStream;
  const stdout = new PassThrough();
  docker.modem.demuxStream(stream, stdout, new PassThrough());
  await c.start();
  const out: number[] = [];
  let waiting: (() => void) | undefined;
  let buffer = '';
  stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    if (buffer.endsWith('\n')) {
      buffer = '';
      waiting?.();
    }
  });
  try {
    for (let i = 0; i < runs; i++) {
      const t = process.hrtime.bigint();
      await new Promise<void>((resolve) => {
        waiting = resolve;
        stream.write(`${JSON.stringify({ id: i, params: { n: i } })}\n`);
      });
      out.push(since(t));
    }
  } finally {
    await c.remove({ force: true });
  }
  return out;
}

/** An HTTP round trip to the api that touches nothing behind it (an unknown route). */
export async function httpFloor(base: URL, runs: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    await requestJson(base, 'GET', '/nothing');
    out.push(since(t));
  }
  return out;
}

export { median };
