import { useQuery } from "@tanstack/react-query";
import { api, unwrap } from "./api/client";

export const useSources = () =>
  useQuery({ queryKey: ["sources"], queryFn: () => unwrap(api.GET("/api/v1/sources")) });

export const overviewQuery = {
  queryKey: ["overview"],
  queryFn: () => unwrap(api.GET("/api/v1/overview")),
};

export const useOverview = () => useQuery({ ...overviewQuery, refetchInterval: 60_000 });

/** Runs by state over a longer window; loaded on its own (it is the slow part at scale). */
export const useRunCounts = (hours: number, enabled = true) =>
  useQuery({
    queryKey: ["overview", "runs", hours],
    enabled,
    queryFn: () => unwrap(api.GET("/api/v1/overview/runs", { params: { query: { hours } } })),
  });

export const useGuardrails = () =>
  useQuery({
    queryKey: ["guardrails"],
    queryFn: () => unwrap(api.GET("/api/v1/overview/guardrails")),
  });
