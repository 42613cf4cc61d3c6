import { createReadStream, readFileSync } from 'node:fs';
import path from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import multer from 'multer';
import { rateLimit, ipKeyGenerator } from 'express-rate-limit';
import helmet from 'helmet';
import { PlatformError, asPlatformError } from '../protocol/errors';
import { resolveLimits } from '../protocol/limits';
import { isValidName, nameFromImage } from '../protocol/names';
import { registryRefusal } from '../protocol/registries';
import { functionOptionsSchema, invokeInputSchema, runtimeInputSchema } from '../protocol/schemas';
import type { FunctionRecord, Runtime } from '../protocol/types';
import { BasicAuth } from './auth';
import type { ApiConfig } from './config';
import type { Platform } from './platform';
import { openApiDocument } from './openapi';
import { answer, callbackUrl, checkParamsDepth, idempotencyKey, parseCallNum, wantsWait, zodMessage } from './requests';
import { crossSiteGuard, endpointCrossSiteGuard, hostGuard, hostPolicy, jsonBody } from './request-guards';
import { restHandlers, type RestOperation } from './rest-routes';
import { triggerHandlers, type TriggerOperation } from './trigger-routes';
import { secretHandlers, type SecretOperation } from './secret-routes';
import { ROUTES, type OperationId, type RouteSpec } from './route-table';
import { uiRouter } from './ui-routes';
import { HTTP_TRIGGER_PATHS, httpTriggerHandler } from './http-trigger';

const swaggerUiAssets = path.dirname(require.resolve('swagger-ui-dist/package.json'));

/** No inline script: helmet's Content-Security-Policy allows scripts from this origin only. */
const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>faas api</title><link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div><script src="/docs/assets/swagger-ui-bundle.js"></script><script src="/docs/init.js"></script></body>
</html>
`;

function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** The seed's HTTP calls, on the same paths and payloads; the /v1 resources; metrics and the api's description. */
export function createApp(platform: Platform, config: ApiConfig): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // upgrade-insecure-requests would have a browser fetch /docs's assets over HTTPS from any host
  // name but localhost: the page would stay blank on an api served over plain HTTP.
  app.use(helmet({ contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } } }));
  app.use(hostGuard(hostPolicy(config.allowedHosts, config.host)));

  // Every route below /health needs a user when users are configured.
  const auth = new BasicAuth(config.users, {
    maxFailures: config.authMaxFailures,
    windowMs: config.authLockoutMs,
    onScrypt: () => platform.metrics.authChecked(),
    onRefused: (reason) => platform.metrics.authChecked(reason),
  });
  const limiter =
    config.rateLimitPerMinute > 0
      ? rateLimit({
          windowMs: 60_000,
          limit: config.rateLimitPerMinute,
          standardHeaders: 'draft-7',
          legacyHeaders: false,
          keyGenerator: (req, res) => (typeof res.locals.user === 'string' ? `user:${res.locals.user}` : `ip:${ipKeyGenerator(req.ip ?? '')}`),
          handler: (_req, _res, next, options) =>
            next(new PlatformError('RATE_LIMITED', `more than ${options.limit} requests a minute`, { retryAfterSeconds: Math.ceil(options.windowMs / 1000) })),
        })
      : undefined;
  const guards = [crossSiteGuard(), ...(auth.enabled ? [auth.middleware()] : []), ...(limiter ? [limiter] : [])];

  // Functions' own HTTP endpoints, any method and body: a public one passes the rate limit only, the others
  // every guard, cross-site checked on every method.
  const trigger = httpTriggerHandler(platform, {
    maxBodyBytes: config.maxBodyBytes,
    guards: [endpointCrossSiteGuard(), ...guards.slice(1)],
    publicGuards: limiter ? [limiter] : [],
    isPlatformUser: (name) => config.users.has(name),
  });
  app.all(HTTP_TRIGGER_PATHS, trigger);

  app.use(guards[0]!);

  const upload = multer({
    dest: platform.packages.uploadDir,
    limits: { fileSize: config.maxUploadBytes, files: 1, fields: 20, parts: 21, fieldNameSize: 100, fieldSize: 320 * 1024, headerPairs: 100 },
  });
  const json = jsonBody(config.maxBodyBytes);

  const handlers: Handlers = { ...seedHandlers(platform, config, upload), ...restHandlers(platform, config), ...triggerHandlers(platform, config), ...secretHandlers(platform) };
  const register = (spec: RouteSpec) => app[spec.method](spec.path, ...(spec.body === 'json' ? [json] : []), handlers[spec.operationId]);

  // Open routes first: /health and the api's description, /openapi.json and a page to read it at /docs.
  for (const spec of ROUTES) if (spec.open) register(spec);
  app.use('/docs/init.js', (_req, res) => {
    res.type('application/javascript').send("window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true });\n");
  });
  app.use('/docs/assets', express.static(swaggerUiAssets, { index: false, fallthrough: false }));
  app.use(uiRouter());

  for (const guard of guards.slice(1)) app.use(guard);

  // Every other route of the table, in its order.
  for (const spec of ROUTES) if (!spec.open) register(spec);

  app.use(() => {
    throw new PlatformError('NOT_FOUND', 'no such route');
  });

  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const error = toPlatformError(err);
    if (error.code === 'INTERNAL') platform.log.error({ err: err instanceof Error ? err.stack : String(err) }, 'request failed');
    if (res.headersSent) return res.end();
    const retryAfter = (error.data as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds;
    if (error.retryable && retryAfter && !res.getHeader('Retry-After')) res.setHeader('Retry-After', String(retryAfter));
    res.status(error.status).json({ error: { code: error.code, message: error.message } });
  });

  return app;
}

/** What each route of the table does, by operationId. */
export type Handler = (req: Request, res: Response, next: NextFunction) => unknown;
export type Handlers = Record<OperationId, Handler>;

/** The seed's calls and the platform's own routes; registration under /v1 shares the seed's code. */
function seedHandlers(platform: Platform, config: ApiConfig, upload: multer.Multer): Omit<Handlers, RestOperation | TriggerOperation | SecretOperation> {
  const document = openApiDocument(packageVersion());

  const registerRuntime = async (req: Request, res: Response) => {
    const parsed = runtimeInputSchema.safeParse(req.body ?? {});
    if (!parsed.success) throw new PlatformError('BAD_REQUEST', zodMessage(parsed.error));
    const refused = registryRefusal(parsed.data.image, config.registries);
    if (refused) throw new PlatformError('BAD_REQUEST', `image: ${refused}`);
    const name = parsed.data.name ?? nameFromImage(parsed.data.image) ?? parsed.data.image;
    if (!isValidName(name)) {
      throw new PlatformError(
        'INVALID_NAME',
        `runtime name "${name}" must match ^[a-z0-9][a-z0-9_-]{0,62}$${parsed.data.name ? '' : '; give a "name" when the image name does not'}`,
      );
    }
    const runtime: Runtime = { ...parsed.data, name, registeredAt: new Date().toISOString() };
    const { created } = await platform.registerRuntime(runtime);
    res.status(created ? 201 : 200).json(runtime);
  };

  const lookupRuntime = async (name: unknown): Promise<Runtime> => {
    const runtime = typeof name === 'string' && isValidName(name) ? await platform.db.getRuntime(name) : null;
    if (!runtime) throw new PlatformError('RUNTIME_NOT_FOUND', `no runtime named "${String(name ?? '').slice(0, 64)}"`);
    return runtime;
  };

  /**
   * Takes a function's package from a multipart form (file field `module`) and registers it. The
   * seed's route names the runtime in its path, checked before the upload; PUT /v1/functions/:name
   * names it in the form field `runtime`.
   */
  const registerFunction = (funcName: string, pathRuntime: Runtime | undefined, req: Request, res: Response, next: NextFunction) => {
    if (!isValidName(funcName)) throw new PlatformError('INVALID_NAME', `function name "${funcName}" must match ^[a-z0-9][a-z0-9_-]{0,62}$`);
    upload.single('module')(req, res, (err: unknown) => {
      // Anything the multipart parser throws is about the body the client sent.
      if (err) return next(err instanceof PlatformError || err instanceof multer.MulterError ? err : new PlatformError('BAD_REQUEST', `bad multipart body: ${err instanceof Error ? err.message.slice(0, 200) : 'unreadable'}`));
      if (!req.file) return next(new PlatformError('BAD_REQUEST', 'the multipart body needs a file in the field "module"'));
      const file = req.file;
      const refuse = (error: unknown) => {
        void platform.packages.discard(file.path);
        next(error);
      };
      // multer makes arrays of repeated fields and objects of `name[key]` ones: every field is one string here.
      const fields: Record<string, unknown> = { ...(req.body as Record<string, unknown> | undefined) };
      const odd = Object.keys(fields).find((key) => typeof fields[key] !== 'string');
      if (odd !== undefined) {
        return refuse(new PlatformError('BAD_REQUEST', `the form field "${odd.slice(0, 64)}" is given more than once or with a nested name (name[key]): each field is one plain value`));
      }
      void (pathRuntime ? Promise.resolve(pathRuntime) : lookupRuntime(fields.runtime)).then(async (runtime) => {
        const options = functionOptionsSchema.safeParse(fields);
        if (!options.success) return refuse(new PlatformError('BAD_REQUEST', zodMessage(options.error)));
        if (options.data.args?.length && runtime.mode === 'handler') {
          return refuse(new PlatformError('BAD_REQUEST', `args extend a run command: runtime "${runtime.name}" is in handler mode, which has none per call`));
        }
        for (const name of options.data.secrets ?? []) {
          if (!(await platform.db.getSecret(name))) return refuse(new PlatformError('BAD_REQUEST', `secret "${name}" does not exist: create it first (POST /v1/secrets, faas secret create)`));
        }
        if (options.data.retries && options.data.idempotent !== 'true') {
          return refuse(new PlatformError('BAD_REQUEST', 'retries run a call again: they are for functions registered idempotent=true'));
        }
        const resolved = resolveLimits(options.data, config.limits);
        if ('error' in resolved) return refuse(new PlatformError('INVALID_LIMITS', resolved.error));
        const { limits } = resolved;
        platform.packages
          .ingest(file.path)
          .then(async (pkg) => {
            const fn: FunctionRecord = {
              functionName: funcName,
              runtimeName: runtime.name,
              version: pkg.sha256,
              size: pkg.size,
              format: pkg.format,
              registeredAt: new Date().toISOString(),
              ...(options.data.handler ? { handler: options.data.handler } : {}),
              ...(options.data.preload ? { preload: options.data.preload } : {}),
              ...(options.data.idempotent === 'true' ? { idempotent: true } : {}),
              ...(options.data.public === 'true' ? { public: true } : {}),
              ...(options.data.retries ? { retries: options.data.retries } : {}),
              ...(options.data.secrets?.length ? { secrets: [...new Set(options.data.secrets)] } : {}),
              ...(Object.keys(limits).length > 0 ? { limits } : {}),
              ...(options.data.env && Object.keys(options.data.env).length > 0 ? { env: options.data.env } : {}),
              ...(options.data.args?.length ? { args: options.data.args } : {}),
              ...(options.data.outputs === 'true' ? { outputs: true } : {}),
            };
            const { created } = await platform.registerFunction(fn);
            res.status(created ? 201 : 200).json(fn);
          })
          .catch(next);
      }, refuse);
    });
  };

  return {
    getHealth: async (_req, res) => {
      const health = await platform.health();
      res.status(health.status === 'ok' ? 200 : 503).json(health);
    },
    getOpenApi: (_req, res) => {
      res.json(document);
    },
    getDocs: (_req, res) => {
      res.type('html').send(DOCS_PAGE);
    },
    registerRuntime,
    createRuntime: registerRuntime,
    registerFunction: async (req, res, next) => {
      const { runtime: runtimeName, funcName } = req.params as { runtime: string; funcName: string };
      if (!isValidName(funcName)) throw new PlatformError('INVALID_NAME', `function name "${funcName}" must match ^[a-z0-9][a-z0-9_-]{0,62}$`);
      registerFunction(funcName, await lookupRuntime(runtimeName), req, res, next);
    },
    putFunction: (req, res, next) => {
      registerFunction(req.params.name as string, undefined, req, res, next);
    },
    invokeFunction: async (req, res) => {
      const parsed = invokeInputSchema.safeParse(req.body ?? {});
      if (!parsed.success) throw new PlatformError('BAD_REQUEST', zodMessage(parsed.error));
      checkParamsDepth(parsed.data.params, config.maxParamsDepth);
      const callback = callbackUrl(req, parsed.data.callbackUrl, config.callbackAllow, config.port);
      await answer(platform, res, await platform.invoke(parsed.data.funcName, parsed.data.params ?? {}, wantsWait(req, parsed.data.wait), idempotencyKey(req), { callbackUrl: callback }));
    },
    listRuntimeNames: async (_req, res) => {
      res.json((await platform.db.listRuntimes()).map((r) => r.name));
    },
    listFunctionNames: async (_req, res) => {
      res.json((await platform.db.listFunctions()).map((f) => f.functionName));
    },
    getCallStore: async (_req, res) => {
      await streamCallStore(platform, res);
    },
    getCallByNumber: async (req, res) => {
      const callNum = parseCallNum(req.params.callNum as string);
      const call = await platform.db.getCall(callNum);
      if (!call) throw new PlatformError('CALL_NOT_FOUND', `no call ${callNum}`);
      res.json(call);
    },
    listWorkerNodes: (_req, res) => {
      res.json(platform.workers());
    },
    /** Workers fetch function packages here by hash. */
    getPackage: (req, res) => {
      const sha = req.params.sha256 as string;
      if (!platform.packages.has(sha)) throw new PlatformError('PACKAGE_NOT_FOUND', `no package ${sha}`);
      res.setHeader('Content-Type', 'application/gzip');
      const stream = createReadStream(platform.packages.path(sha));
      stream.on('error', () => res.destroy());
      stream.pipe(res);
    },
    /** Prometheus text format; behind the same credentials as the rest when users are configured. */
    getMetrics: async (_req, res) => {
      const { contentType, body } = await platform.metrics.text();
      res.setHeader('Content-Type', contentType);
      res.send(body);
    },
  };
}

/**
 * The seed's call store, `{"c<callNum>": call, ...}` oldest first, written page by page as db-service
 * answers them: no process holds more than one page, whatever the number of calls. An error before
 * the first byte is an ordinary error answer; after it, the connection is cut so that the client
 * never takes a partial store for a whole one.
 */
async function streamCallStore(platform: Platform, res: Response): Promise<void> {
  const pages = platform.db.iterateCalls({ limit: CALL_STORE_PAGE })[Symbol.asyncIterator]();
  let page = await pages.next();
  res.status(200).setHeader('Content-Type', 'application/json; charset=utf-8');
  let open = '{';
  try {
    while (!page.done) {
      // The client went away: stop reading pages for nobody.
      if (res.destroyed) return void (await pages.return?.(undefined));
      let chunk = '';
      for (const call of page.value) {
        chunk += `${open}${JSON.stringify(`c${call.callNum}`)}:${JSON.stringify(call)}`;
        open = ',';
      }
      if (chunk && !res.write(chunk)) await drained(res);
      page = await pages.next();
    }
    res.end(open === '{' ? '{}' : '}');
  } catch (err) {
    platform.log.warn({ err: String(err) }, 'GET /calls cut short');
    res.destroy();
  }
}

const CALL_STORE_PAGE = 1000;

function drained(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Errors from body-parser and multer mapped to the registry; anything else is INTERNAL. */
function toPlatformError(err: unknown): PlatformError {
  if (err instanceof PlatformError) return err;
  const e = err as { type?: string; code?: string; status?: number; message?: string };
  if (e?.type === 'entity.parse.failed') return new PlatformError('INVALID_JSON', 'the body is not valid JSON');
  if (e?.type === 'entity.too.large') return new PlatformError('PAYLOAD_TOO_LARGE', 'the body is too large');
  if (e?.type === 'charset.unsupported' || e?.type === 'encoding.unsupported') return new PlatformError('UNSUPPORTED_MEDIA_TYPE', e.message ?? 'unsupported body encoding');
  if (e instanceof multer.MulterError) {
    if (e.code === 'LIMIT_FILE_SIZE') return new PlatformError('PAYLOAD_TOO_LARGE', 'the package is too large');
    return new PlatformError('BAD_REQUEST', `bad upload: ${e.message}`);
  }
  if (e?.status === 404) return new PlatformError('NOT_FOUND', 'no such file');
  if (e?.status && e.status >= 400 && e.status < 500) return new PlatformError('BAD_REQUEST', e.message ?? 'bad request');
  return asPlatformError(err);
}
