import { useQuery } from "@tanstack/react-query";
import { api, unwrap } from "./api/client";

export const useSources = () =>
  useQuery({ queryKey: ["sources"], queryFn: () => unwrap(api.GET("/api/v1/sources")) });

/** Replicas and source leases; refreshed often, lease ages change by the second. */
export const useCluster = () =>
  useQuery({
    queryKey: ["cluster"],
    queryFn: () => unwrap(api.GET("/api/v1/cluster")),
    refetchInterval: 5_000,
  });

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
