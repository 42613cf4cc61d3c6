import { OpenAPIRegistry, OpenApiGeneratorV31, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { documentPath, error, ROUTES, TAGS } from './route-table';

/** The methods documented for a function's endpoint (it answers any). */
const HTTP_TRIGGER_METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

/**
 * The OpenAPI 3.1 document of the HTTP api, made from the route table the api registers its routes
 * from (route-table.ts), with the zod schemas the routes validate with.
 */
export function openApiDocument(version: string): object {
  const registry = new OpenAPIRegistry();
  registry.registerComponent('securitySchemes', 'basicAuth', { type: 'http', scheme: 'basic', description: 'only when the platform has users (FAAS_AUTH_USERS)' });
  // Open routes need no credentials; every other one may answer 401 (a platform with users), 429 (a rate limit,
  // or a lockout after wrong credentials) and 503 (too many credentials waiting to be checked). Every route
  // answers 421 to a Host it does not serve; one that changes state, 403 to a page of another site; one that
  // takes JSON, 415 to another body type.
  for (const spec of ROUTES) {
    const config: RouteConfig = {
      method: spec.method,
      path: documentPath(spec.path),
      operationId: spec.operationId,
      tags: [spec.tag],
      summary: spec.summary,
      ...(spec.request ? { request: spec.request } : {}),
      responses: spec.responses,
    };
    const guarded = {
      421: error('the Host header names a host the api does not serve (FAAS_ALLOWED_HOSTS)'),
      ...(spec.method === 'get' ? {} : { 403: error('sent by a page of another site (Origin, Sec-Fetch-Site)') }),
      ...(spec.body === 'json' ? { 415: error('the body is not application/json') } : {}),
      ...spec.responses,
    };
    registry.registerPath(
      spec.open
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
  }

  // A function's endpoint: any method, any body; the answer is the function's (docs of /function/:name in the README).
  for (const below of [false, true]) {
    for (const method of HTTP_TRIGGER_METHODS) {
      const name = z.string().openapi({ description: 'the function' });
      registry.registerPath({
        method,
        path: below ? '/function/{name}/{path}' : '/function/{name}',
        operationId: `${method}FunctionEndpoint${below ? 'Path' : ''}`,
        tags: ['http'],
        summary: `Runs the function with the request (${method.toUpperCase()}) as its params: {method, path, query, headers, body, isBase64Encoded}`,
        description:
          'Answers what the function returns: {statusCode, headers, body, isBase64Encoded}, or any other value as JSON with 200 (text as text/plain in process mode). X-Call-Number names the call. A function registered public=true answers without credentials.',
        request: { params: below ? z.object({ name, path: z.string().openapi({ description: 'the rest of the path, slashes included' }) }) : z.object({ name }) },
        security: [{ basicAuth: [] }, {}],
        responses: {
          200: { description: "the function's answer (any status, headers and body it chose)" },
          401: error('credentials missing or wrong (a platform with users, a function not public)'),
          403: error('sent by a page of another site to a function that is not public'),
          404: error('no such function (FUNCTION_NOT_FOUND)'),
          413: error('the body is larger than FAAS_MAX_BODY_BYTES'),
          421: error('the Host header names a host the api does not serve (FAAS_ALLOWED_HOSTS)'),
          429: error('too many calls wait (QUEUE_FULL), or too many requests (RATE_LIMITED)'),
          502: error('the call ended ERROR (FUNCTION_FAILED), or answered a response that cannot be sent (BAD_FUNCTION_RESPONSE)'),
          504: error('the call ran past its timeout, or is still running at the wait bound (FUNCTION_TIMEOUT)'),
        },
      });
    }
  }

  return new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'faas platform HTTP api',
      version,
      license: { name: 'MIT', identifier: 'MIT' },
      description: 'Register runtimes and functions, invoke them, follow their calls. Errors are {"error": {"code", "message"}}.',
    },
    servers: [{ url: '/' }],
    tags: TAGS.map((t) => ({ ...t })),
    // Credentials are asked for only by a platform with users; /health, /openapi.json and /docs are always open.
    security: [{ basicAuth: [] }, {}],
  });
}
