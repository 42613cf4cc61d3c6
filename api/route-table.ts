import { extendZodWithOpenApi, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import {
  callLogsSchema,
  callPageSchema,
  callQuerySchema,
  callSchema,
  errorSchema,
  eventQuerySchema,
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
import { cronTriggerInputSchema, cronTriggerSchema, secretInfoSchema, secretInputSchema } from '../protocol/schemas';

extendZodWithOpenApi(z);

/** The groups of the document, in its order. */
export const TAGS = [
  { name: 'seed', description: "The platform's original calls, on their original paths and payloads" },
  { name: 'runtimes', description: 'Docker images that run functions' },
  { name: 'functions', description: 'Packages of code on a runtime, and their versions' },
  { name: 'calls', description: 'Invocations, their results, logs and outputs' },
  { name: 'events', description: 'What happens, as it happens (Server-Sent Events)' },
  { name: 'http', description: "Functions' own HTTP endpoints: the answer is the function's" },
  { name: 'triggers', description: 'Calls made on a schedule (cron)' },
  { name: 'secrets', description: 'Values functions read as files, never given back' },
  { name: 'workers', description: 'The nodes that run calls' },
  { name: 'platform', description: "The api's own: health, metrics, this document" },
] as const;
export type Tag = (typeof TAGS)[number]['name'];

/**
 * One entry per route the api serves: routes.ts registers each with the handler of its operationId,
 * openapi.ts describes each. `path` is in express's form (`/v1/calls/:callNum`).
 */
export interface RouteSpec {
  operationId: OperationId;
  method: 'get' | 'post' | 'put' | 'delete';
  path: string;
  tag: Tag;
  summary: string;
  /** Served without credentials, before the authentication middleware. */
  open?: boolean;
  /** The body the route reads: JSON (parsed before the handler) or a multipart form (the handler reads it). */
  body?: 'json' | 'multipart';
  request?: RouteConfig['request'];
  responses: RouteConfig['responses'];
}

export type OperationId =
  | 'getHealth'
  | 'registerRuntime'
  | 'registerFunction'
  | 'invokeFunction'
  | 'listRuntimeNames'
  | 'listFunctionNames'
  | 'getCallStore'
  | 'getCallByNumber'
  | 'listWorkerNodes'
  | 'getPackage'
  | 'listRuntimes'
  | 'createRuntime'
  | 'getRuntime'
  | 'deleteRuntime'
  | 'listFunctions'
  | 'getFunction'
  | 'putFunction'
  | 'deleteFunction'
  | 'listFunctionVersions'
  | 'makeVersionCurrent'
  | 'createCall'
  | 'listCalls'
  | 'getCall'
  | 'getCallLogs'
  | 'streamEvents'
  | 'getCallOutputs'
  | 'rerunCall'
  | 'listWorkers'
  | 'createSecret'
  | 'listSecrets'
  | 'getSecret'
  | 'deleteSecret'
  | 'createTrigger'
  | 'listTriggers'
  | 'getTrigger'
  | 'deleteTrigger'
  | 'getMetrics'
  | 'getOpenApi'
  | 'getDocs';

// The payloads, each a component of the document under its name.
const Runtime = runtimeSchema.openapi('Runtime');
const RuntimeInput = runtimeInputSchema.openapi('RuntimeInput');
const Function = functionSchema.openapi('Function');
const FunctionVersion = functionVersionSchema.openapi('FunctionVersion');
const Call = callSchema.openapi('Call');
const ListedCall = listedCallSchema.openapi('ListedCall');
const CallPage = callPageSchema.openapi('CallPage');
const CallLogs = callLogsSchema.openapi('CallLogs');
export const ErrorBody = errorSchema.openapi('Error');
const Worker = workerSchema.openapi('Worker');
const SecretInput = secretInputSchema.openapi('SecretInput');
const Secret = secretInfoSchema.extend({ usedBy: z.array(z.string()).optional().describe('the functions that use it') }).openapi('Secret');
const TriggerInput = cronTriggerInputSchema.openapi('TriggerInput');
const Trigger = cronTriggerSchema.extend({ nextTick: z.string().optional().describe('when it fires next (ISO 8601)') }).openapi('Trigger');
const Health = healthSchema.openapi('Health');
const InvokeInput = invokeInputSchema.openapi('InvokeInput');
const CallInput = v1InvokeBodySchema.openapi('CallInput');
const form = registerFunctionFormSchema.extend({ module: z.string().openapi({ format: 'binary', description: 'the package: a .tar.gz or .zip with the code at its root' }) });
const RegisterFunctionForm = form.openapi('RegisterFunctionForm');
const RegisterFunctionV1Form = form.extend({ runtime: z.string().describe('the runtime to run it on') }).openapi('RegisterFunctionV1Form');

export const json = (schema: z.ZodTypeAny, description: string) => ({ description, content: { 'application/json': { schema } } });
export const error = (description: string) => json(ErrorBody, description);
const eventStream = (description: string) => ({ description, content: { 'text/event-stream': { schema: z.string().openapi({ description: 'Server-Sent Events (docs/EVENTS.md)' }) } } });
const name = (what: string) => z.object({ name: z.string().openapi({ description: `${what} name` }) });
const callNum = z.object({ callNum: z.string().regex(/^\d+$/).openapi({ description: 'call number' }) });
const wait = z.object({ wait: z.enum(['true', '1']).optional().openapi({ description: 'wait for the end (up to the api wait bound)' }) });
const idempotency = z.object({
  'idempotency-key': z.string().optional().openapi({ description: 'a repeated request with the same key gets the first call back (Idempotent-Replayed: true)' }),
});
const invokeHeaders = idempotency.extend({
  'x-callback-url': z.string().optional().openapi({ description: 'POST the final call there when it ends (hosts the operator allows: FAAS_CALLBACK_ALLOW); as the body field callbackUrl' }),
});
const jsonBody = (schema: z.ZodTypeAny) => ({ body: { content: { 'application/json': { schema } } } });
const invoked = {
  200: json(Call, 'the call, ended (when waited for)'),
  202: json(Call, 'the call as it stands: queued, or still running after the wait bound'),
  400: error('bad request'),
  404: error('no such function or call'),
  409: error('the Idempotency-Key made another call'),
  429: error('too many calls wait (Retry-After)'),
};
const registered = (what: z.ZodTypeAny) => ({ 200: json(what, 'replaced, or a new version'), 201: json(what, 'registered'), 400: error('bad input') });

export const ROUTES: readonly RouteSpec[] = [
  // The seed's calls, unchanged.
  { operationId: 'getHealth', method: 'get', path: '/health', tag: 'platform', open: true, summary: 'Health: db-service answers and a worker is connected', responses: { 200: json(Health, 'ok'), 503: json(Health, 'degraded') } },
  { operationId: 'registerRuntime', method: 'post', path: '/registerRuntime', tag: 'seed', body: 'json', summary: 'Register a runtime (the RUNTIME object)', request: jsonBody(RuntimeInput), responses: registered(Runtime) },
  {
    operationId: 'registerFunction',
    method: 'post',
    path: '/registerFunction/:runtime/:funcName',
    tag: 'seed',
    body: 'multipart',
    summary: 'Register a function: a multipart form with the package in the field "module"',
    request: { params: z.object({ runtime: z.string(), funcName: z.string() }), body: { content: { 'multipart/form-data': { schema: RegisterFunctionForm } } } },
    responses: { ...registered(Function), 404: error('no such runtime'), 413: error('too large') },
  },
  { operationId: 'invokeFunction', method: 'post', path: '/invokeFunction', tag: 'seed', body: 'json', summary: 'Invoke a function (the seed call)', request: { query: wait, headers: invokeHeaders, ...jsonBody(InvokeInput) }, responses: invoked },
  { operationId: 'listRuntimeNames', method: 'get', path: '/runtimes', tag: 'seed', summary: 'Names of the runtimes', responses: { 200: json(z.array(z.string()), 'names') } },
  { operationId: 'listFunctionNames', method: 'get', path: '/functions', tag: 'seed', summary: 'Names of the functions', responses: { 200: json(z.array(z.string()), 'names') } },
  { operationId: 'getCallStore', method: 'get', path: '/calls', tag: 'seed', summary: 'Every call, keyed "c<callNum>", oldest first, without logs (streamed)', responses: { 200: json(z.record(ListedCall), 'the call store') } },
  { operationId: 'getCallByNumber', method: 'get', path: '/call/:callNum', tag: 'seed', summary: 'One call', request: { params: callNum }, responses: { 200: json(Call, 'the call'), 400: error('not a call number'), 404: error('no such call') } },
  { operationId: 'listWorkerNodes', method: 'get', path: '/workers', tag: 'seed', summary: 'Connected workers', responses: { 200: json(z.array(Worker), 'workers') } },
  {
    operationId: 'getPackage',
    method: 'get',
    path: '/packages/:sha256',
    tag: 'workers',
    summary: 'A function package by hash (for workers)',
    request: { params: z.object({ sha256: z.string().regex(/^[a-f0-9]{64}$/) }) },
    responses: { 200: { description: 'the canonical .tar.gz', content: { 'application/gzip': { schema: z.string().openapi({ format: 'binary' }) } } }, 404: error('no such package') },
  },

  // Resources under /v1.
  { operationId: 'listRuntimes', method: 'get', path: '/v1/runtimes', tag: 'runtimes', summary: 'Runtimes', responses: { 200: json(z.array(Runtime), 'runtimes') } },
  { operationId: 'createRuntime', method: 'post', path: '/v1/runtimes', tag: 'runtimes', body: 'json', summary: 'Register a runtime (as POST /registerRuntime)', request: jsonBody(RuntimeInput), responses: registered(Runtime) },
  { operationId: 'getRuntime', method: 'get', path: '/v1/runtimes/:name', tag: 'runtimes', summary: 'One runtime', request: { params: name('runtime') }, responses: { 200: json(Runtime, 'the runtime'), 404: error('no such runtime') } },
  {
    operationId: 'deleteRuntime',
    method: 'delete',
    path: '/v1/runtimes/:name',
    tag: 'runtimes',
    summary: 'Remove a runtime no function uses',
    request: { params: name('runtime') },
    responses: { 204: { description: 'removed' }, 404: error('no such runtime'), 409: error('functions use it') },
  },
  {
    operationId: 'createSecret',
    method: 'post',
    path: '/v1/secrets',
    tag: 'secrets',
    body: 'json',
    summary: 'Create or replace a secret; its value is sealed at rest and never given back. Functions using it get new containers',
    request: jsonBody(SecretInput),
    responses: { 200: json(Secret, 'replaced'), 201: json(Secret, 'created'), 400: error('bad name or value') },
  },
  { operationId: 'listSecrets', method: 'get', path: '/v1/secrets', tag: 'secrets', summary: 'Secrets: names, times, the functions using each; never values', responses: { 200: json(z.array(Secret), 'secrets') } },
  { operationId: 'getSecret', method: 'get', path: '/v1/secrets/:name', tag: 'secrets', summary: 'One secret, without its value', request: { params: name('secret') }, responses: { 200: json(Secret, 'the secret'), 404: error('no such secret') } },
  {
    operationId: 'deleteSecret',
    method: 'delete',
    path: '/v1/secrets/:name',
    tag: 'secrets',
    summary: 'Remove a secret no function uses',
    request: { params: name('secret') },
    responses: { 204: { description: 'removed' }, 404: error('no such secret'), 409: error('functions use it') },
  },
  {
    operationId: 'createTrigger',
    method: 'post',
    path: '/v1/triggers',
    tag: 'triggers',
    body: 'json',
    summary: 'Create or replace a cron trigger: its function is called with its params at each tick of its schedule',
    request: jsonBody(TriggerInput),
    responses: { 200: json(Trigger, 'replaced'), 201: json(Trigger, 'created'), 400: error('bad schedule, time zone or field'), 404: error('no such function') },
  },
  { operationId: 'listTriggers', method: 'get', path: '/v1/triggers', tag: 'triggers', summary: 'Cron triggers, with their last and next ticks', responses: { 200: json(z.array(Trigger), 'triggers') } },
  { operationId: 'getTrigger', method: 'get', path: '/v1/triggers/:name', tag: 'triggers', summary: 'One cron trigger', request: { params: name('trigger') }, responses: { 200: json(Trigger, 'the trigger'), 404: error('no such trigger') } },
  { operationId: 'deleteTrigger', method: 'delete', path: '/v1/triggers/:name', tag: 'triggers', summary: 'Remove a cron trigger (its calls stay)', request: { params: name('trigger') }, responses: { 204: { description: 'removed' }, 404: error('no such trigger') } },
  { operationId: 'listFunctions', method: 'get', path: '/v1/functions', tag: 'functions', summary: 'Functions', responses: { 200: json(z.array(Function), 'functions') } },
  { operationId: 'getFunction', method: 'get', path: '/v1/functions/:name', tag: 'functions', summary: 'One function', request: { params: name('function') }, responses: { 200: json(Function, 'the function'), 404: error('no such function') } },
  {
    operationId: 'putFunction',
    method: 'put',
    path: '/v1/functions/:name',
    tag: 'functions',
    body: 'multipart',
    summary: 'Register a function or a new version of it: the registerFunction form with the runtime in the field "runtime"',
    request: { params: name('function'), body: { content: { 'multipart/form-data': { schema: RegisterFunctionV1Form } } } },
    responses: { ...registered(Function), 404: error('no such runtime'), 413: error('too large') },
  },
  {
    operationId: 'deleteFunction',
    method: 'delete',
    path: '/v1/functions/:name',
    tag: 'functions',
    summary: 'Remove a function and its versions (its calls stay)',
    request: { params: name('function') },
    responses: { 204: { description: 'removed' }, 404: error('no such function') },
  },
  {
    operationId: 'listFunctionVersions',
    method: 'get',
    path: '/v1/functions/:name/versions',
    tag: 'functions',
    summary: 'Versions of a function, newest first',
    request: { params: name('function') },
    responses: { 200: json(z.array(FunctionVersion), 'versions'), 404: error('no such function') },
  },
  {
    operationId: 'makeVersionCurrent',
    method: 'post',
    path: '/v1/functions/:name/versions/:version/current',
    tag: 'functions',
    summary: 'Make a version of a function current again (a rollback): new calls run it, with its own fields',
    request: { params: name('function').extend({ version: z.string().regex(/^[a-f0-9]{64}$/).openapi({ description: 'the version: its package hash' }) }) },
    responses: { 200: json(Function, 'the function, at that version'), 404: error('no such function, version, or its package is gone') },
  },
  {
    operationId: 'createCall',
    method: 'post',
    path: '/v1/functions/:name/calls',
    tag: 'calls',
    body: 'json',
    summary: 'Invoke a function; Idempotency-Key makes a repeated request return the first call',
    request: { params: name('function'), query: wait, headers: invokeHeaders, ...jsonBody(CallInput) },
    responses: invoked,
  },
  {
    operationId: 'listCalls',
    method: 'get',
    path: '/v1/calls',
    tag: 'calls',
    summary: 'Calls, newest first, a page at a time',
    request: { query: callQuerySchema },
    responses: { 200: json(CallPage, 'a page of calls without their logs; next is the cursor of the following one (a page of large calls may hold fewer than limit)'), 400: error('bad query') },
  },
  { operationId: 'getCall', method: 'get', path: '/v1/calls/:callNum', tag: 'calls', summary: 'One call', request: { params: callNum }, responses: { 200: json(Call, 'the call'), 400: error('not a call number'), 404: error('no such call') } },
  {
    operationId: 'getCallLogs',
    method: 'get',
    path: '/v1/calls/:callNum/logs',
    tag: 'calls',
    summary: "The call's stdout and stderr; with follow=true, an event stream of them as they are written, ending with the call",
    request: { params: callNum, query: z.object({ follow: z.enum(['true', '1']).optional().openapi({ description: 'stream stdout, stderr and end events until the call ends' }) }) },
    responses: {
      200: { description: 'logs (JSON), or with follow=true an event stream', content: { 'application/json': { schema: CallLogs }, 'text/event-stream': { schema: z.string() } } },
      400: error('not a call number'),
      404: error('no such call'),
      503: error('too many followers (TOO_MANY_SUBSCRIBERS, Retry-After)'),
    },
  },
  {
    operationId: 'streamEvents',
    method: 'get',
    path: '/v1/events',
    tag: 'events',
    summary: 'Live events: calls accepted, started and ended; functions, runtimes and workers coming and going (Server-Sent Events, resumable with Last-Event-ID)',
    request: {
      query: eventQuerySchema.extend({
        types: z.string().optional().openapi({ description: 'comma-separated event types or families (call, function, runtime, worker)' }),
        function: z.string().optional().openapi({ description: 'only events about this function' }),
        lastEventId: z.string().optional().openapi({ description: 'the id to resume after, for clients that cannot send the Last-Event-ID header' }),
      }),
      headers: z.object({ 'last-event-id': z.string().optional().openapi({ description: 'resume after this event' }) }),
    },
    responses: { 200: eventStream('the event stream'), 400: error('bad query'), 503: error('too many streams open (TOO_MANY_SUBSCRIBERS, Retry-After)') },
  },
  {
    operationId: 'getCallOutputs',
    method: 'get',
    path: '/v1/calls/:callNum/outputs',
    tag: 'calls',
    summary: 'A zip of the files the call wrote to /out',
    request: { params: callNum },
    responses: { 200: { description: 'the zip', content: { 'application/zip': { schema: z.string().openapi({ format: 'binary' }) } } }, 400: error('not a call number'), 404: error('no such call, or no outputs') },
  },
  {
    operationId: 'rerunCall',
    method: 'post',
    path: '/v1/calls/:callNum/rerun',
    tag: 'calls',
    summary: 'Run a call again: same function version, params, args and env; the new call names the old one in rerunOf',
    request: { params: callNum, query: wait, headers: idempotency },
    responses: invoked,
  },
  { operationId: 'listWorkers', method: 'get', path: '/v1/workers', tag: 'workers', summary: 'Connected workers', responses: { 200: json(z.array(Worker), 'workers') } },

  // The platform's own.
  { operationId: 'getMetrics', method: 'get', path: '/metrics', tag: 'platform', summary: 'Prometheus metrics', responses: { 200: { description: 'text format 0.0.4', content: { 'text/plain': { schema: z.string() } } } } },
  { operationId: 'getOpenApi', method: 'get', path: '/openapi.json', tag: 'platform', open: true, summary: 'This document', responses: { 200: json(z.object({}).passthrough(), 'OpenAPI 3.1') } },
  { operationId: 'getDocs', method: 'get', path: '/docs', tag: 'platform', open: true, summary: 'A readable page of this document', responses: { 200: { description: 'HTML', content: { 'text/html': { schema: z.string() } } } } },
];

/** `/v1/calls/:callNum` as the document writes it: `/v1/calls/{callNum}`. */
export function documentPath(path: string): string {
  return path.replace(/:(\w+)/g, '{$1}');
}
