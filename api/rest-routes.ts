import type express from 'express';
import type { Request } from 'express';
import { PlatformError } from '../protocol/errors';
import { isValidName } from '../protocol/names';
import { isFinal, type FunctionRecord } from '../protocol/types';
import type { ApiConfig } from './config';
import type { Platform } from './platform';
import { jsonBody } from './request-guards';
import { answer, checkParamsDepth, idempotencyKey, parseCallNum, wantsWait, zodMessage } from './requests';
import { callQuerySchema, v1InvokeBodySchema } from './schemas';

const DEFAULT_PAGE = 50;

function nameParam(req: Request, what: 'runtime' | 'function'): string {
  const name = req.params.name as string;
  if (!isValidName(name)) throw new PlatformError(what === 'runtime' ? 'RUNTIME_NOT_FOUND' : 'FUNCTION_NOT_FOUND', `no ${what} named "${String(req.params.name).slice(0, 64)}"`);
  return name;
}

/** Records stored before they were cut to what a user set may still carry multer's `fieldname` and `originalname`. */
function publicFunction<T extends FunctionRecord>(fn: T): T {
  const { fieldname: _field, originalname: _original, ...rest } = fn as T & { fieldname?: unknown; originalname?: unknown };
  return rest as T;
}

function callParam(req: Request): number {
  return parseCallNum(req.params.callNum as string);
}

/**
 * Resource-style routes under /v1 beside the seed's calls: full records, removal, versions, invoking,
 * filtered and paginated calls, a call's logs and outputs, re-runs. (Registration under /v1 shares the
 * seed's code, in routes.ts.)
 */
export function addRestRoutes(app: express.Express, platform: Platform, config: ApiConfig): void {
  const json = jsonBody(config.maxBodyBytes);

  app.get('/v1/runtimes', async (_req, res) => {
    res.json(await platform.db.listRuntimes());
  });

  app.get('/v1/runtimes/:name', async (req, res) => {
    const name = nameParam(req, 'runtime');
    const runtime = await platform.db.getRuntime(name);
    if (!runtime) throw new PlatformError('RUNTIME_NOT_FOUND', `no runtime named "${name}"`);
    res.json(runtime);
  });

  app.delete('/v1/runtimes/:name', async (req, res) => {
    await platform.removeRuntime(nameParam(req, 'runtime'));
    res.status(204).end();
  });

  app.get('/v1/functions', async (_req, res) => {
    res.json((await platform.db.listFunctions()).map(publicFunction));
  });

  app.get('/v1/functions/:name', async (req, res) => {
    const name = nameParam(req, 'function');
    const fn = await platform.db.getFunction(name);
    if (!fn) throw new PlatformError('FUNCTION_NOT_FOUND', `no function named "${name}"`);
    res.json(publicFunction(fn));
  });

  app.delete('/v1/functions/:name', async (req, res) => {
    await platform.removeFunction(nameParam(req, 'function'));
    res.status(204).end();
  });

  app.get('/v1/functions/:name/versions', async (req, res) => {
    const name = nameParam(req, 'function');
    const current = await platform.db.getFunction(name);
    if (!current) throw new PlatformError('FUNCTION_NOT_FOUND', `no function named "${name}"`);
    const versions = await platform.db.listFunctionVersions(name);
    // Functions registered before versions were recorded have only their current one.
    if (!versions.some((v) => v.version === current.version)) versions.unshift(current);
    res.json(versions.map((v) => ({ ...publicFunction(v), current: v.version === current.version })));
  });

  /**
   * Newest first, without logs; `next` is the cursor of the following page, null on the last one. db-service
   * reads through the index that fits the filters and ends a page early when its calls are large.
   */
  app.get('/v1/calls', async (req, res) => {
    const parsed = callQuerySchema.safeParse(req.query);
    if (!parsed.success) throw new PlatformError('BAD_REQUEST', zodMessage(parsed.error));
    const q = parsed.data;
    const page = await platform.db.listCallPage({
      newestFirst: true,
      limit: q.limit ?? DEFAULT_PAGE,
      ...(q.cursor ? { beforeCallNum: q.cursor } : {}),
      ...(q.function ? { funcName: q.function } : {}),
      ...(q.status ? { status: q.status } : {}),
      ...(q.since ? { since: q.since } : {}),
      ...(q.until ? { until: q.until } : {}),
    });
    res.json({ calls: page.calls, next: page.next === null ? null : String(page.next) });
  });

  /** Invoke: 202 with the new call, or with ?wait=true (or "wait": true) 200 with its end. */
  app.post('/v1/functions/:name/calls', json, async (req, res) => {
    const name = nameParam(req, 'function');
    const body = v1InvokeBodySchema.safeParse(req.body ?? {});
    if (!body.success) throw new PlatformError('BAD_REQUEST', zodMessage(body.error));
    checkParamsDepth(body.data.params, config.maxParamsDepth);
    const started = await platform.invoke(name, body.data.params ?? {}, wantsWait(req, body.data.wait), idempotencyKey(req), { args: body.data.args, env: body.data.env });
    await answer(platform, res, started);
  });

  /** The same function version and params again, as a new call with `rerunOf`. */
  app.post('/v1/calls/:callNum/rerun', async (req, res) => {
    await answer(platform, res, await platform.rerun(callParam(req), wantsWait(req), idempotencyKey(req)));
  });

  app.get('/v1/calls/:callNum', async (req, res) => {
    res.json(await platform.currentCall(callParam(req)));
  });

  /** What the function wrote while this call ran; a cut log ends with the platform's marker. */
  app.get('/v1/calls/:callNum/logs', async (req, res) => {
    const call = await platform.currentCall(callParam(req));
    res.json({ callNum: call.callNum, status: call.status, stdout: call.stdout ?? '', stderr: call.stderr ?? '', truncated: call.truncated === true });
  });

  /** A zip of the files the call left in its output folder (functions registered with outputs=true). */
  app.get('/v1/calls/:callNum/outputs', async (req, res) => {
    const call = await platform.currentCall(callParam(req));
    if (call.outputs?.truncated) {
      throw new PlatformError('OUTPUTS_NOT_FOUND', `call ${call.callNum} wrote ${call.outputs.bytes} bytes of outputs, past the platform's limit (FAAS_MAX_OUTPUT_BYTES): none were kept`);
    }
    const zip = call.outputs ? await platform.db.getOutputs(call.callNum) : null;
    if (!zip) {
      throw new PlatformError('OUTPUTS_NOT_FOUND', `call ${call.callNum} kept no outputs${isFinal(call.status) ? '' : ' yet'} (a function keeps what it writes to /out when registered with outputs=true)`);
    }
    res.setHeader('Content-Type', 'application/zip');
    res.setHeader('Content-Disposition', `attachment; filename="call-${call.callNum}-outputs.zip"`);
    res.send(zip);
  });

  app.get('/v1/workers', (_req, res) => {
    res.json(platform.workers());
  });

}
