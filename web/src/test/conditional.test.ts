import { afterEach, describe, expect, it, vi } from "vitest";
import { api, clearConditionalCache, setToken, unwrap } from "../api/client";

const page = (uid: string) => JSON.stringify({ items: [{ uid }], next_cursor: null, total: null });

describe("conditional requests", () => {
  afterEach(() => {
    vi.unstubAllGlobals();
    clearConditionalCache();
    setToken(null);
  });

  it("sends the last ETag and reuses the kept body on 304", async () => {
    setToken("acd_test");
    const seen: (string | null)[] = [];
    let body = page("a/1");
    let etag = 'W/"one"';
    vi.stubGlobal(
      "fetch",
      vi.fn(async (req: Request) => {
        const inm = req.headers.get("If-None-Match");
        seen.push(inm);
        if (inm === etag) return new Response(null, { status: 304, headers: { ETag: etag } });
        return new Response(body, {
          status: 200,
          headers: { "Content-Type": "application/json", ETag: etag },
        });
      }),
    );
    const get = () => unwrap(api.GET("/api/v1/runs", { params: { query: { limit: 5 } } }));
    expect((await get()).items.map((r) => r.uid)).toEqual(["a/1"]);
    expect((await get()).items.map((r) => r.uid)).toEqual(["a/1"]); // answered by a 304
    body = page("b/2");
    etag = 'W/"two"';
    expect((await get()).items.map((r) => r.uid)).toEqual(["b/2"]); // changed: the new body
    expect(seen).toEqual([null, 'W/"one"', 'W/"one"']);
    // Another query is another resource: no tag sent.
    await unwrap(api.GET("/api/v1/runs", { params: { query: { limit: 6 } } }));
    expect(seen[3]).toBeNull();
  });

  it("keeps nothing for another token or for errors", async () => {
    const seen: (string | null)[] = [];
    vi.stubGlobal(
      "fetch",
      vi.fn(async (req: Request) => {
        seen.push(req.headers.get("If-None-Match"));
        return new Response(page("a/1"), {
          status: 200,
          headers: { "Content-Type": "application/json", ETag: 'W/"x"' },
        });
      }),
    );
    setToken("acd_one");
    await unwrap(api.GET("/api/v1/runs", {}));
    setToken("acd_two");
    await unwrap(api.GET("/api/v1/runs", {}));
    expect(seen).toEqual([null, null]);
  });
});
