import path from 'node:path';
import Docker from 'dockerode';
import { assertImageRef } from './image-ref';

/**
 * docker-modem follows redirects on its own (lib/http.js, after follow-redirects 0.0.x): on a 3xx
 * with a Location it sends a second request to whatever host and port the Location names, and that
 * request has no 'error' listener, so a refused connection is an uncaught exception in the process.
 * The engine answers 301 to any path with "." or ".." segments (its router cleans paths), so a
 * crafted image name in /images/NAME/json aimed the client at a host of the sender's choosing.
 *
 * The module's one knob is its maximum number of redirects. At 0 the first request is still sent
 * and a redirect becomes an 'error' on that request, which the modem listens to: the call fails
 * and no second request is made. It is set on the copy of docker-modem that dockerode loads.
 */
const modemHttp = require(require.resolve('docker-modem/lib/http', { paths: [path.dirname(require.resolve('dockerode'))] })) as { maxRedirects: number };
modemHttp.maxRedirects = 0;

/** What docker-modem says when it meets a redirect it may not follow. */
const REDIRECT_REFUSED = /^Max redirects exceeded/;

/** A call the engine answered with a redirect: it is not followed, and it is not the engine's usual answer. */
export class DockerRedirectError extends Error {
  constructor(what: string) {
    super(`the Docker engine answered ${what} with a redirect, which is never followed`);
    this.name = 'DockerRedirectError';
  }
}

interface DialOptions {
  path?: string;
  method?: string;
}
type DialCallback = (err: Error | null, data?: unknown) => void;

/**
 * The Docker client of every process of the platform. Image names go into request paths only when
 * they are image references (protocol/image-ref.ts), and a redirect from the engine is an error.
 */
export class DockerClient extends Docker {
  constructor(options?: Docker.DockerOptions) {
    super(options);
    const modem = this.modem as unknown as { dial: (options: DialOptions, callback: DialCallback) => void };
    const dial = modem.dial.bind(modem);
    modem.dial = (options, callback) =>
      dial(options, (err, data) => {
        if (err && REDIRECT_REFUSED.test(err.message)) callback(new DockerRedirectError(`${options.method ?? 'GET'} ${(options.path ?? '').split('?')[0]}`));
        else callback(err, data);
      });
  }

  /** An image by name or id; a name outside the reference grammar throws before any request. */
  override getImage(name: string): Docker.Image {
    assertImageRef(name);
    return super.getImage(name);
  }
}

export function dockerClient(options?: Docker.DockerOptions): DockerClient {
  return new DockerClient(options);
}
