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
}

const Ctx = createContext<Auth | null>(null);

export function useAuth(): Auth {
  const a = useContext(Ctx);
  if (!a) throw new Error("useAuth outside AuthProvider");
  return a;
}

/** Holds the API token in memory and in sessionStorage (gone when the tab closes). */
export function AuthProvider({ children }: { children: ReactNode }) {
  const qc = useQueryClient();
  const [me, setMe] = useState<Me | null>(null);
  const [restoring, setRestoring] = useState(() => !!sessionStorage.getItem(KEY));

  const logout = useCallback(() => {
    sessionStorage.removeItem(KEY);
    setToken(null);
    setMe(null);
    qc.clear();
  }, [qc]);

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
    if (!saved) return;
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
    () => ({ me, login, logout, can: (a: string) => !!me?.can?.[a] }),
    [me, login, logout],
  );
  if (restoring) return <div className="boot" role="status">Loading…</div>;
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}
