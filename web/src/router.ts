import { useEffect, useState } from "react";

/** Hash routes (#/jobs?source=x) so every view is a shareable link and a reload works
 *  with the gateway's static file server. */
export interface Route {
  path: string;
  segments: string[];
  params: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#/, "") || "/";
  const [p, q = ""] = raw.split("?", 2);
  const path = p.startsWith("/") ? p : `/${p}`;
  const segments = path
    .split("/")
    .filter(Boolean)
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
  return { path, segments, params: new URLSearchParams(q) };
}

export function href(path: string, params?: Record<string, string | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) if (v) q.set(k, v);
  const qs = q.toString();
  return `#${path}${qs ? `?${qs}` : ""}`;
}

export const jobHref = (uid: string) => `#/jobs/${encodeURIComponent(uid)}`;
export const runHref = (uid: string) => `#/runs/${encodeURIComponent(uid)}`;
export const lineageHref = (uid: string) => href("/lineage", { job: uid });
export const runLineageHref = (uid: string) => href("/lineage", { mode: "runs", run: uid });

export function navigate(to: string, replace = false): void {
  const target = to.startsWith("#") ? to : `#${to}`;
  if (replace) history.replaceState(null, "", target);
  else history.pushState(null, "", target);
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    window.addEventListener("hashchange", on);
    window.addEventListener("popstate", on);
    return () => {
      window.removeEventListener("hashchange", on);
      window.removeEventListener("popstate", on);
    };
  }, []);
  return route;
}

/** Replaces some query parameters of the current route, keeping the others. */
export function setParams(route: Route, changes: Record<string, string | null | undefined>): void {
  const q = new URLSearchParams(route.params);
  for (const [k, v] of Object.entries(changes)) {
    if (v) q.set(k, v);
    else q.delete(k);
  }
  const qs = q.toString();
  navigate(`${route.path}${qs ? `?${qs}` : ""}`, true);
}
