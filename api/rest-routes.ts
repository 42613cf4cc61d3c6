import type { Request } from 'express';
import { PlatformError } from '../protocol/errors';
import { isFinal, type FunctionRecord } from '../protocol/types';
import type { ApiConfig } from './config';
import type { Platform } from './platform';
import { answer, callbackUrl, checkParamsDepth, idempotencyKey, nameParam, parseCallNum, wantsWait, zodMessage } from './requests';
import { parseTypes } from './event-hub';
import type { Handlers } from './routes';
import { callQuerySchema, eventQuerySchema, v1InvokeBodySchema } from './schemas';

const DEFAULT_PAGE = 50;

export type RestOperation =
  | 'listRuntimes'
  | 'getRuntime'
  | 'deleteRuntime'
  | 'listFunctions'
  | 'getFunction'
  | 'deleteFunction'
  | 'listFunctionVersions'
  | 'makeVersionCurrent'
  | 'listCalls'
  | 'createCall'
  | 'rerunCall'
  | 'getCall'
  | 'getCallLogs'
  | 'getCallOutputs'
  | 'listWorkers'
  | 'streamEvents';

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
export function restHandlers(platform: Platform, config: ApiConfig): Pick<Handlers, RestOperation> {
  return {
    listRuntimes: async (_req, res) => {
      res.json(await platform.db.listRuntimes());
    },

    getRuntime: async (req, res) => {
      const name = nameParam(req, 'runtime');
      const runtime = await platform.db.getRuntime(name);
      if (!runtime) throw new PlatformError('RUNTIME_NOT_FOUND', `no runtime named "${name}"`);
      res.json(runtime);
    },

    deleteRuntime: async (req, res) => {
      await platform.removeRuntime(nameParam(req, 'runtime'));
      res.status(204).end();
    },

    listFunctions: async (_req, res) => {
      res.json((await platform.db.listFunctions()).map(publicFunction));
    },

    getFunction: async (req, res) => {
      const name = nameParam(req, 'function');
      const fn = await platform.db.getFunction(name);
      if (!fn) throw new PlatformError('FUNCTION_NOT_FOUND', `no function named "${name}"`);
      res.json(publicFunction(fn));
    },

    deleteFunction: async (req, res) => {
      await platform.removeFunction(nameParam(req, 'function'));
      res.status(204).end();
    },

    listFunctionVersions: async (req, res) => {
      const name = nameParam(req, 'function');
      const current = await platform.db.getFunction(name);
      if (!current) throw new PlatformError('FUNCTION_NOT_FOUND', `no function named "${name}"`);
      const versions = await platform.db.listFunctionVersions(name);
      // Functions registered before versions were recorded have only their current one.
      if (!versions.some((v) => v.version === current.version)) versions.unshift(current);
      res.json(versions.map((v) => ({ ...publicFunction(v), current: v.version === current.version })));
    },

    /**
     * Newest first, without logs; `next` is the cursor of the following page, null on the last one. db-service
     * reads through the index that fits the filters and ends a page early when its calls are large.
     */
    /** A rollback: the version's own record (runtime, handler, limits, env) registered again, as now. */
    makeVersionCurrent: async (req, res) => {
      const name = nameParam(req, 'function');
      const version = String(req.params.version);
      const record = /^[a-f0-9]{64}$/.test(version) ? await platform.db.getFunctionVersion(name, version) : null;
      if (!record) throw new PlatformError('FUNCTION_NOT_FOUND', `function "${name}" has no version ${version.slice(0, 64)}`);
      if (!(await platform.db.getRuntime(record.runtimeName))) throw new PlatformError('RUNTIME_NOT_FOUND', `version ${version.slice(0, 12)} of "${name}" runs on runtime "${record.runtimeName}", which is no longer registered`);
      if (!platform.packages.has(version)) throw new PlatformError('PACKAGE_NOT_FOUND', `the package of version ${version.slice(0, 12)} of "${name}" is no longer stored`);
      const fn = { ...publicFunction(record), registeredAt: new Date().toISOString() };
      await platform.registerFunction(fn);
      res.json(fn);
    },

    listCalls: async (req, res) => {
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
        ...(q.deadLetter === 'true' ? { deadLetter: true } : {}),
      });
      res.json({ calls: page.calls, next: page.next === null ? null : String(page.next) });
    },

    /** Invoke: 202 with the new call, or with ?wait=true (or "wait": true) 200 with its end. */
    createCall: async (req, res) => {
      const name = nameParam(req, 'function');
      const body = v1InvokeBodySchema.safeParse(req.body ?? {});
      if (!body.success) throw new PlatformError('BAD_REQUEST', zodMessage(body.error));
      checkParamsDepth(body.data.params, config.maxParamsDepth);
      const callback = callbackUrl(req, body.data.callbackUrl, config.callbackAllow, config.port);
      const started = await platform.invoke(name, body.data.params ?? {}, wantsWait(req, body.data.wait), idempotencyKey(req), { args: body.data.args, env: body.data.env, callbackUrl: callback });
      await answer(platform, res, started);
    },

    /** The same function version and params again, as a new call with `rerunOf`. */
    rerunCall: async (req, res) => {
      await answer(platform, res, await platform.rerun(callParam(req), wantsWait(req), idempotencyKey(req)));
    },

    getCall: async (req, res) => {
      const call = await platform.currentCall(callParam(req));
      // A call with a callback shows how its deliveries went.
      const record = call.callbackUrl ? await platform.db.getCallback(call.callNum) : null;
      res.json(record ? { ...call, callback: { state: record.state, attempts: record.attempts } } : call);
    },

    /**
     * What the function wrote while this call ran; a cut log ends with the platform's marker. With
     * ?follow=true, an event stream of what it writes as it writes it, until it ends (docs/EVENTS.md).
     */
    getCallLogs: async (req, res) => {
      const call = await platform.currentCall(callParam(req));
      if (req.query.follow === 'true' || req.query.follow === '1') {
        platform.logs.follow(res, call);
        // The call may have ended between the first read and the follow: its end is not missed.
        if (!isFinal(call.status)) {
          const now = await platform.db.getCall(call.callNum).catch(() => null);
          if (now && isFinal(now.status)) platform.logs.ended(now);
        }
        return;
      }
      res.json({ callNum: call.callNum, status: call.status, stdout: call.stdout ?? '', stderr: call.stderr ?? '', truncated: call.truncated === true });
    },

    /** A zip of the files the call left in its output folder (functions registered with outputs=true). */
    getCallOutputs: async (req, res) => {
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
    },

    listWorkers: (_req, res) => {
      res.json(platform.workers());
    },

    /** The live events (docs/EVENTS.md): Server-Sent Events, filtered, resumable with Last-Event-ID. */
    streamEvents: (req, res) => {
      const parsed = eventQuerySchema.safeParse(req.query);
      if (!parsed.success) throw new PlatformError('BAD_REQUEST', zodMessage(parsed.error));
      const types = parseTypes(parsed.data.types);
      const lastEventId = req.get('last-event-id') ?? parsed.data.lastEventId;
      platform.events.subscribe(res, { ...(types ? { types } : {}), ...(parsed.data.function ? { function: parsed.data.function } : {}) }, lastEventId);
    },
  };
}
