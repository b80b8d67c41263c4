import { useQueryClient } from "@tanstack/react-query";
import { createContext, useCallback, useContext, useEffect, useMemo, useState } from "react";
import type { ReactNode } from "react";
import { api, ApiError, type Me, setToken, setUnauthorizedHandler, unwrap } from "./api/client";
import { overviewQuery } from "./queries";

const KEY = "accord.token";

interface Auth {
  me: Me | null;
  login: (token: string) => Promise<void>;
  logout: () => void;
  can: (action: string) => boolean;
  /** Single sign-on is configured: the login page offers it (see docs/sso.md). */
  sso: boolean;
}

/** A single sign-on session lives in an HttpOnly cookie that scripts never see; the
 *  gateway ends it on POST /auth/logout. */
async function ssoEnabled(): Promise<boolean> {
  try {
    const r = await fetch("/auth/config");
    return r.ok && ((await r.json()) as { enabled?: boolean }).enabled === true;
  } catch {
    return false;
  }
}

const Ctx = createContext<Auth | null>(null);

export function useAuth(): Auth {
  const a = useContext(Ctx);
  if (!a) throw new Error("useAuth outside AuthProvider");
  return a;
}

/** Holds the API token in memory and in sessionStorage (gone when the tab closes), or
 *  follows a single sign-on session (an HttpOnly cookie set by the gateway). */
export function AuthProvider({ children }: { children: ReactNode }) {
  const qc = useQueryClient();
  const [me, setMe] = useState<Me | null>(null);
  const [sso, setSso] = useState(false);
  const [ssoSession, setSsoSession] = useState(false);
  const [restoring, setRestoring] = useState(true);

  const logout = useCallback(() => {
    sessionStorage.removeItem(KEY);
    setToken(null);
    setMe(null);
    qc.clear();
    if (ssoSession) {
      setSsoSession(false);
      void fetch("/auth/logout", { method: "POST", headers: { "X-Accord-Channel": "ui" } });
    }
  }, [qc, ssoSession]);

  useEffect(() => {
    setUnauthorizedHandler(logout);
    return () => setUnauthorizedHandler(null);
  }, [logout]);

  const login = useCallback(async (token: string) => {
    setToken(token.trim());
    try {
      const who = await unwrap(api.POST("/api/v1/login"));
      sessionStorage.setItem(KEY, token.trim());
      setMe(who);
    } catch (e) {
      setToken(null);
      throw e;
    }
  }, []);

  useEffect(() => {
    const saved = sessionStorage.getItem(KEY);
    if (!saved) {
      // No API token in this tab: a single sign-on session may be open (its cookie is sent
      // with every request of this origin).
      void ssoEnabled().then(async (enabled) => {
        setSso(enabled);
        if (enabled) {
          try {
            setMe(await unwrap(api.GET("/api/v1/me")));
            setSsoSession(true);
          } catch {
            /* not signed in: the login page offers single sign-on */
          }
        }
        setRestoring(false);
      });
      return;
    }
    setToken(saved);
    // Opening the overview with a saved token: ask for its data while the token is checked.
    if (location.hash === "" || location.hash === "#/") void qc.prefetchQuery(overviewQuery);
    unwrap(api.GET("/api/v1/me"))
      .then(setMe)
      .catch((e: unknown) => {
        if (e instanceof ApiError && e.status === 401) sessionStorage.removeItem(KEY);
        setToken(null);
      })
      .finally(() => setRestoring(false));
  }, [qc]);

  const value = useMemo<Auth>(
    () => ({ me, login, logout, can: (a: string) => !!me?.can?.[a], sso }),
    [me, login, logout, sso],
  );
  if (restoring) return <div className="boot" role="status">Loading…</div>;
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}
