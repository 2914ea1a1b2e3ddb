import type { FastifyRequest } from 'fastify';

/**
 * Whether a request is for a route under `prefix` (e.g. `/internal/`). Judged by the route
 * the router matched, not by the raw URL alone: the router decodes the path, so
 * `/%69nternal/v1/api-keys` reaches an internal route although its raw URL does not start
 * with `/internal/`. A request no route matched is judged by its raw URL.
 */
export function isRouteUnder(request: Pick<FastifyRequest, 'url' | 'routeOptions'>, prefix: string): boolean {
  return request.url.startsWith(prefix) || (request.routeOptions.url?.startsWith(prefix) ?? false);
}
