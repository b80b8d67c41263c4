import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Job = Schemas["JobPublic"];
export type Run = Schemas["RunPublic"];
export type Source = Schemas["SourcePublic"];
export type AuditRecord = Schemas["AuditRecordPublic"];
export type Overview = Schemas["OverviewPublic"];
export type Guardrail = Schemas["GuardrailPublic"];
export type Lineage = Schemas["LineagePublic"];
export type LineageNode = Schemas["LineageNode"];
export type LineageEdge = Schemas["LineageEdge"];
export type Me = Schemas["Me"];
export type ActionResult = Schemas["ActionResult"];
export type Approval = Schemas["ApprovalPublic"];
export type StatsRow = Schemas["StatsRow"];
export type PolicyView = Schemas["PolicyView"];
export type RunEvent = Schemas["RunEventPublic"];

/** An error answered by the gateway ({"error": {code, message, ...}}) or the network. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

let token: string | null = null;
let onUnauthorized: (() => void) | null = null;

/** The token lives in memory (and sessionStorage, see auth.tsx), never in a URL. */
export function setToken(value: string | null): void {
  token = value;
}

export function getToken(): string | null {
  return token;
}

export function setUnauthorizedHandler(fn: (() => void) | null): void {
  onUnauthorized = fn;
}

export function authHeaders(): Record<string, string> {
  const h: Record<string, string> = { "X-Accord-Channel": "ui" };
  if (token) h.Authorization = `Bearer ${token}`;
  return h;
}

const auth: Middleware = {
  onRequest({ request }) {
    for (const [k, v] of Object.entries(authHeaders())) request.headers.set(k, v);
    return request;
  },
};

/**
 * Conditional GETs: the gateway tags every JSON answer with a weak ETag. The last answer
 * of each GET (per URL and token) is kept; the next request sends its tag in
 * If-None-Match, and a 304 (nothing changed, no body sent) is answered from the kept
 * body. Polling and live refreshes then cost a few hundred bytes while nothing changes.
 */
const CONDITIONAL_ENTRIES = 200;
const conditional = new Map<string, { etag: string; body: string; headers: [string, string][] }>();

export function clearConditionalCache(): void {
  conditional.clear();
}

export async function conditionalFetch(req: Request): Promise<Response> {
  if (req.method !== "GET") return globalThis.fetch(req);
  const key = `${req.url}\n${req.headers.get("Authorization") ?? ""}`;
  const kept = conditional.get(key);
  if (kept) req.headers.set("If-None-Match", kept.etag);
  const res = await globalThis.fetch(req);
  if (res.status === 304 && kept) {
    conditional.delete(key); // most recently used last
    conditional.set(key, kept);
    return new Response(kept.body, { status: 200, headers: kept.headers });
  }
  const etag = res.headers.get("ETag");
  if (res.ok && etag && (res.headers.get("Content-Type") ?? "").startsWith("application/json")) {
    const body = await res.clone().text();
    conditional.delete(key);
    conditional.set(key, { etag, body, headers: [...res.headers.entries()] });
    while (conditional.size > CONDITIONAL_ENTRIES) {
      const oldest = conditional.keys().next().value;
      if (oldest === undefined) break;
      conditional.delete(oldest);
    }
  } else if (kept) {
    conditional.delete(key);
  }
  return res;
}

export const api = createClient<paths>({
  baseUrl: globalThis.location?.origin ?? "",
  // Looked up per call, so tests can replace fetch.
  fetch: (req: Request) => conditionalFetch(req),
});
api.use(auth);

export async function toApiError(res: Response, body: unknown): Promise<ApiError> {
  const err = (body as { error?: { code?: string; message?: string; details?: unknown } })?.error;
  if (res.status === 401 && onUnauthorized) onUnauthorized();
  return new ApiError(
    res.status,
    err?.code ?? `http_${res.status}`,
    err?.message ?? (res.statusText || `the gateway answered ${res.status}`),
    err?.details,
  );
}

/** Unwraps an openapi-fetch result: the data, or a thrown ApiError. */
export async function unwrap<T>(
  p: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  let r: { data?: T; error?: unknown; response: Response };
  try {
    r = await p;
  } catch (e) {
    throw new ApiError(0, "network", `the gateway cannot be reached (${(e as Error).message})`);
  }
  if (r.error !== undefined || !r.response.ok) throw await toApiError(r.response, r.error);
  return r.data as T;
}

/** Follows `next_cursor` until the list ends or `max` items are loaded. */
export async function collectPages<T>(
  page: (cursor: string | undefined) => Promise<{ items: T[]; next_cursor?: string | null }>,
  max: number,
): Promise<{ items: T[]; complete: boolean }> {
  const items: T[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 1000; i++) {
    const p = await page(cursor);
    items.push(...p.items);
    if (!p.next_cursor) return { items, complete: true };
    if (items.length >= max) return { items, complete: false };
    cursor = p.next_cursor;
  }
  return { items, complete: false };
}
