import { OpenAPIRegistry, OpenApiGeneratorV3, extendZodWithOpenApi, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import {
  callLogsSchema,
  callPageSchema,
  callQuerySchema,
  callSchema,
  errorSchema,
  functionSchema,
  functionVersionSchema,
  healthSchema,
  invokeInputSchema,
  listedCallSchema,
  registerFunctionFormSchema,
  runtimeInputSchema,
  runtimeSchema,
  v1InvokeBodySchema,
  workerSchema,
} from './schemas';

extendZodWithOpenApi(z);

/**
 * The OpenAPI 3 document of the HTTP api, made from the same zod schemas the routes validate with:
 * one entry per route the api serves (a test checks both lists are the same).
 */
export function openApiDocument(version: string): object {
  const registry = new OpenAPIRegistry();
  const Runtime = registry.register('Runtime', runtimeSchema);
  const RuntimeInput = registry.register('RuntimeInput', runtimeInputSchema);
  const Function = registry.register('Function', functionSchema);
  const FunctionVersion = registry.register('FunctionVersion', functionVersionSchema);
  const Call = registry.register('Call', callSchema);
  const ListedCall = registry.register('ListedCall', listedCallSchema);
  const CallPage = registry.register('CallPage', callPageSchema);
  const CallLogs = registry.register('CallLogs', callLogsSchema);
  const Error = registry.register('Error', errorSchema);
  const Worker = registry.register('Worker', workerSchema);
  const Health = registry.register('Health', healthSchema);
  const InvokeInput = registry.register('InvokeInput', invokeInputSchema);
  const CallInput = registry.register('CallInput', v1InvokeBodySchema);
  const form = registerFunctionFormSchema.extend({ module: z.string().openapi({ format: 'binary', description: 'the package: a .tar.gz or .zip with the code at its root' }) });
  const RegisterFunctionForm = registry.register('RegisterFunctionForm', form);
  const RegisterFunctionV1Form = registry.register('RegisterFunctionV1Form', form.extend({ runtime: z.string().describe('the runtime to run it on') }));
  registry.registerComponent('securitySchemes', 'basicAuth', { type: 'http', scheme: 'basic', description: 'only when the platform has users (FAAS_AUTH_USERS)' });
  const idempotency = z.object({
    'idempotency-key': z.string().optional().openapi({ description: 'a repeated request with the same key gets the first call back (Idempotent-Replayed: true)' }),
  });

  const json = (schema: z.ZodTypeAny, description: string) => ({ description, content: { 'application/json': { schema } } });
  const error = (description: string) => json(Error, description);
  const name = (what: string) => z.object({ name: z.string().openapi({ description: `${what} name` }) });
  const callNum = z.object({ callNum: z.string().regex(/^\d+$/).openapi({ description: 'call number' }) });
  const wait = z.object({ wait: z.enum(['true', '1']).optional().openapi({ description: 'wait for the end (up to the api wait bound)' }) });
  const invoked = {
    200: json(Call, 'the call, ended (when waited for)'),
    202: json(Call, 'the call as it stands: queued, or still running after the wait bound'),
    400: error('bad request'),
    404: error('no such function or call'),
    409: error('the Idempotency-Key made another call'),
    429: error('too many calls wait (Retry-After)'),
  };
  // Open routes need no credentials; every other one may answer 401 (a platform with users), 429 (a rate limit,
  // or a lockout after wrong credentials) and 503 (too many credentials waiting to be checked). Every route
  // answers 421 to a Host it does not serve; one that changes state, 403 to a page of another site; one that
  // takes JSON, 415 to another body type.
  const OPEN = new Set(['/health', '/openapi.json', '/docs']);
  const route = (config: RouteConfig) => {
    const guarded = {
      421: error('the Host header names a host the api does not serve (FAAS_ALLOWED_HOSTS)'),
      ...(config.method === 'get' ? {} : { 403: error('sent by a page of another site (Origin, Sec-Fetch-Site)') }),
      ...(config.request?.body?.content['application/json'] ? { 415: error('the body is not application/json') } : {}),
      ...config.responses,
    };
    registry.registerPath(
      OPEN.has(config.path)
        ? { ...config, responses: guarded, security: [] }
        : {
            ...config,
            responses: {
              401: error('credentials missing or wrong (a platform with users)'),
              429: error('too many requests from this user, or too many wrong credentials from this address or for this name (Retry-After)'),
              503: error('too many credentials wait to be checked (Retry-After)'),
              ...guarded,
            },
          },
    );
  };

  // The seed's calls, unchanged.
  route({ method: 'get', path: '/health', summary: 'Health: db-service answers and a worker is connected', responses: { 200: json(Health, 'ok'), 503: json(Health, 'degraded') } });
  route({
    method: 'post',
    path: '/registerRuntime',
    summary: 'Register a runtime (the RUNTIME object)',
    request: { body: { content: { 'application/json': { schema: RuntimeInput } } } },
    responses: { 200: json(Runtime, 'replaced'), 201: json(Runtime, 'registered'), 400: error('bad runtime') },
  });
  route({
    method: 'post',
    path: '/registerFunction/{runtime}/{funcName}',
    summary: 'Register a function: a multipart form with the package in the field "module"',
    request: {
      params: z.object({ runtime: z.string(), funcName: z.string() }),
      body: { content: { 'multipart/form-data': { schema: RegisterFunctionForm } } },
    },
    responses: { 200: json(Function, 'a new version'), 201: json(Function, 'registered'), 400: error('bad package or field'), 404: error('no such runtime'), 413: error('too large') },
  });
  route({
    method: 'post',
    path: '/invokeFunction',
    summary: 'Invoke a function (the seed call)',
    request: { query: wait, headers: idempotency, body: { content: { 'application/json': { schema: InvokeInput } } } },
    responses: invoked,
  });
  route({ method: 'get', path: '/runtimes', summary: 'Names of the runtimes', responses: { 200: json(z.array(z.string()), 'names') } });
  route({ method: 'get', path: '/functions', summary: 'Names of the functions', responses: { 200: json(z.array(z.string()), 'names') } });
  route({ method: 'get', path: '/calls', summary: 'Every call, keyed "c<callNum>", oldest first, without logs (streamed)', responses: { 200: json(z.record(ListedCall), 'the call store') } });
  route({ method: 'get', path: '/call/{callNum}', summary: 'One call', request: { params: callNum }, responses: { 200: json(Call, 'the call'), 400: error('not a call number'), 404: error('no such call') } });
  route({ method: 'get', path: '/workers', summary: 'Connected workers', responses: { 200: json(z.array(Worker), 'workers') } });
  route({
    method: 'get',
    path: '/packages/{sha256}',
    summary: 'A function package by hash (for workers)',
    request: { params: z.object({ sha256: z.string().regex(/^[a-f0-9]{64}$/) }) },
    responses: { 200: { description: 'the canonical .tar.gz', content: { 'application/gzip': { schema: z.string().openapi({ format: 'binary' }) } } }, 404: error('no such package') },
  });

  // Resources under /v1.
  route({ method: 'get', path: '/v1/runtimes', summary: 'Runtimes', responses: { 200: json(z.array(Runtime), 'runtimes') } });
  route({
    method: 'post',
    path: '/v1/runtimes',
    summary: 'Register a runtime (as POST /registerRuntime)',
    request: { body: { content: { 'application/json': { schema: RuntimeInput } } } },
    responses: { 200: json(Runtime, 'replaced'), 201: json(Runtime, 'registered'), 400: error('bad runtime') },
  });
  route({ method: 'get', path: '/v1/runtimes/{name}', summary: 'One runtime', request: { params: name('runtime') }, responses: { 200: json(Runtime, 'the runtime'), 404: error('no such runtime') } });
  route({
    method: 'delete',
    path: '/v1/runtimes/{name}',
    summary: 'Remove a runtime no function uses',
    request: { params: name('runtime') },
    responses: { 204: { description: 'removed' }, 404: error('no such runtime'), 409: error('functions use it') },
  });
  route({ method: 'get', path: '/v1/functions', summary: 'Functions', responses: { 200: json(z.array(Function), 'functions') } });
  route({ method: 'get', path: '/v1/functions/{name}', summary: 'One function', request: { params: name('function') }, responses: { 200: json(Function, 'the function'), 404: error('no such function') } });
  route({
    method: 'put',
    path: '/v1/functions/{name}',
    summary: 'Register a function or a new version of it: the registerFunction form with the runtime in the field "runtime"',
    request: { params: name('function'), body: { content: { 'multipart/form-data': { schema: RegisterFunctionV1Form } } } },
    responses: { 200: json(Function, 'a new version'), 201: json(Function, 'registered'), 400: error('bad package or field'), 404: error('no such runtime'), 413: error('too large') },
  });
  route({
    method: 'delete',
    path: '/v1/functions/{name}',
    summary: 'Remove a function and its versions (its calls stay)',
    request: { params: name('function') },
    responses: { 204: { description: 'removed' }, 404: error('no such function') },
  });
  route({
    method: 'get',
    path: '/v1/functions/{name}/versions',
    summary: 'Versions of a function, newest first',
    request: { params: name('function') },
    responses: { 200: json(z.array(FunctionVersion), 'versions'), 404: error('no such function') },
  });
  route({
    method: 'post',
    path: '/v1/functions/{name}/calls',
    summary: 'Invoke a function; Idempotency-Key makes a repeated request return the first call',
    request: { params: name('function'), query: wait, headers: idempotency, body: { content: { 'application/json': { schema: CallInput } } } },
    responses: invoked,
  });
  route({
    method: 'get',
    path: '/v1/calls',
    summary: 'Calls, newest first, a page at a time',
    request: { query: callQuerySchema },
    responses: { 200: json(CallPage, 'a page of calls without their logs; next is the cursor of the following one (a page of large calls may hold fewer than limit)'), 400: error('bad query') },
  });
  route({ method: 'get', path: '/v1/calls/{callNum}', summary: 'One call', request: { params: callNum }, responses: { 200: json(Call, 'the call'), 400: error('not a call number'), 404: error('no such call') } });
  route({ method: 'get', path: '/v1/calls/{callNum}/logs', summary: "The call's stdout and stderr", request: { params: callNum }, responses: { 200: json(CallLogs, 'logs'), 400: error('not a call number'), 404: error('no such call') } });
  route({
    method: 'get',
    path: '/v1/calls/{callNum}/outputs',
    summary: 'A zip of the files the call wrote to /out',
    request: { params: callNum },
    responses: { 200: { description: 'the zip', content: { 'application/zip': { schema: z.string().openapi({ format: 'binary' }) } } }, 400: error('not a call number'), 404: error('no such call, or no outputs') },
  });
  route({
    method: 'post',
    path: '/v1/calls/{callNum}/rerun',
    summary: 'Run a call again: same function version, params, args and env; the new call names the old one in rerunOf',
    request: { params: callNum, query: wait, headers: idempotency },
    responses: invoked,
  });
  route({ method: 'get', path: '/v1/workers', summary: 'Connected workers', responses: { 200: json(z.array(Worker), 'workers') } });

  // The platform's own.
  route({ method: 'get', path: '/metrics', summary: 'Prometheus metrics', responses: { 200: { description: 'text format 0.0.4', content: { 'text/plain': { schema: z.string() } } } } });
  route({ method: 'get', path: '/openapi.json', summary: 'This document', responses: { 200: json(z.object({}).passthrough(), 'OpenAPI 3') } });
  route({ method: 'get', path: '/docs', summary: 'A readable page of this document', responses: { 200: { description: 'HTML', content: { 'text/html': { schema: z.string() } } } } });

  return new OpenApiGeneratorV3(registry.definitions).generateDocument({
    openapi: '3.0.3',
    info: {
      title: 'faas platform HTTP api',
      version,
      description: 'Register runtimes and functions, invoke them, follow their calls. Errors are {"error": {"code", "message"}}.',
    },
    servers: [{ url: '/' }],
    // Credentials are asked for only by a platform with users; /health, /openapi.json and /docs are always open.
    security: [{ basicAuth: [] }, {}],
  });
}
