/**
 * An outside load generator beside the bench's own client: autocannon's programmatic API, with its
 * own HTTP client, connection handling and latency histogram, against the same warm route. A
 * request that fails, times out, answers other than 2xx or ends other than DONE fails the bench:
 * a lost count is never printed as a figure.
 */

export interface OutsideLoad {
  tool: 'autocannon';
  connections: number;
  durationS: number;
  requests: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
}

export type OutsideLoadOutcome = { ran: OutsideLoad } | { skipped: string };

/** autocannon's result, the fields read here. */
interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  requests: { total: number };
  latency: { p50: number; p99: number };
}

type Autocannon = (options: Record<string, unknown>) => Promise<AutocannonResult>;

const PACKAGE = 'autocannon';

function loadAutocannon(): Autocannon | string {
  try {
    // Resolved at run time: the package is optional, and a bench without it still measures the rest.
    return require(PACKAGE) as Autocannon;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'MODULE_NOT_FOUND') return `the npm package ${PACKAGE} is not installed (a devDependency of the project): the outside load generator row is skipped`;
    throw err;
  }
}

/** POST /invokeFunction?wait=true of `funcName` with `{}` from `connections` connections for `durationS` seconds. */
export async function autocannonInvoke(base: URL, funcName: string, connections: number, durationS: number): Promise<OutsideLoadOutcome> {
  const autocannon = loadAutocannon();
  if (typeof autocannon === 'string') return { skipped: autocannon };
  let done = 0;
  const wrong: string[] = [];
  const result = await autocannon({
    url: base.origin,
    connections,
    duration: durationS,
    timeout: 30,
    requests: [
      {
        method: 'POST',
        path: '/invokeFunction?wait=true',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ funcName, params: {} }),
        // Every answer passes here: one that is not a DONE call is kept for the error below.
        onResponse: (status: number, body: string) => {
          let ended: unknown;
          try {
            ended = (JSON.parse(body) as { status?: unknown }).status;
          } catch {
            ended = 'an answer that is not JSON';
          }
          if (status >= 200 && status < 300 && ended === 'DONE') done++;
          else if (wrong.length < 5) wrong.push(`${status} ${String(body).slice(0, 200)}`);
          else wrong.push('');
        },
      },
    ],
  });
  const total = result.requests.total;
  if (result.errors > 0 || result.timeouts > 0 || result.non2xx > 0 || wrong.length > 0) {
    throw new Error(
      `autocannon: ${total} answers, ${done} DONE, ${result.non2xx} not 2xx, ${result.errors} errors, ${result.timeouts} timeouts; ` +
        `first wrong answers: ${wrong.filter(Boolean).join(' | ') || 'none'}`,
    );
  }
  if (done === 0) throw new Error('autocannon: no call was answered DONE');
  return {
    ran: { tool: 'autocannon', connections, durationS: result.duration, requests: total, perSecond: total / result.duration, p50Ms: result.latency.p50, p99Ms: result.latency.p99 },
  };
}
