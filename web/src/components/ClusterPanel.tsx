import type { components } from "../api/schema";
import { fmtDuration } from "../format";
import { useCluster } from "../queries";
import { Card, Q } from "./ui";

type Cluster = components["schemas"]["ClusterPublic"];

/**
 * Which gateway process syncs which source. On PostgreSQL the replicas divide the sources
 * through leases (GET /api/v1/cluster); on SQLite one process syncs them all.
 */
export function ClusterPanel() {
  const q = useCluster();
  return (
    <Card title="Replicas and leases" className="cluster-panel">
      <Q q={q} what="the cluster">
        {(c) => <ClusterView cluster={c} />}
      </Q>
    </Card>
  );
}

export function ClusterView({ cluster }: { cluster: Cluster }) {
  if (cluster.mode !== "cluster") {
    const n = cluster.sources.length;
    return (
      <p data-testid="cluster-single">
        One process: this gateway runs on SQLite and syncs every enabled source itself ({n}{" "}
        {n === 1 ? "source" : "sources"}). Several replicas need PostgreSQL (see “Running several replicas” in the operations guide).
      </p>
    );
  }
  const alive = cluster.replicas.filter((r) => r.alive).length;
  const free = cluster.sources.filter((s) => !s.holder).length;
  return (
    <>
      <p data-testid="cluster-summary">
        {alive} of {cluster.replicas.length} {cluster.replicas.length === 1 ? "replica" : "replicas"} alive, sharing{" "}
        {cluster.sources.length} {cluster.sources.length === 1 ? "source" : "sources"} through leases of{" "}
        {fmtDuration(cluster.lease_seconds)}
        {free > 0 ? `; ${free} waiting for a replica` : ""}. This page was answered by <code>{cluster.replica}</code>.
      </p>
      <div className="table-wrap">
        <table className="table" data-testid="cluster-replicas">
          <thead>
            <tr>
              <th>replica</th>
              <th>host</th>
              <th>state</th>
              <th className="num">heartbeat</th>
              <th className="num">sources held</th>
            </tr>
          </thead>
          <tbody>
            {cluster.replicas.map((r) => (
              <tr key={r.id} data-replica={r.id}>
                <td>
                  <code>{r.id}</code>
                  {r.id === cluster.replica && <span className="tag">this one</span>}
                </td>
                <td className="small">
                  {r.host}
                  {r.pid ? ` (pid ${r.pid})` : ""}
                </td>
                <td>{r.alive ? <span className="health health-ok">alive</span> : <span className="health health-down">gone</span>}</td>
                <td className="num">{r.heartbeat_age_seconds == null ? "—" : `${fmtDuration(r.heartbeat_age_seconds)} ago`}</td>
                <td className="num">{r.leases ?? 0}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div className="table-wrap">
        <table className="table" data-testid="cluster-leases">
          <thead>
            <tr>
              <th>source</th>
              <th>synced by</th>
              <th className="num">held for</th>
              <th className="num">renewed</th>
              <th className="num" title="fencing token: grows each time the lease changes hands">token</th>
            </tr>
          </thead>
          <tbody>
            {cluster.sources.map((s) => (
              <tr key={s.name} data-source={s.name}>
                <td>{s.name}</td>
                <td>{s.holder ? <code>{s.holder}</code> : <span className="muted">no replica (lease expired)</span>}</td>
                <td className="num">{fmtDuration(s.held_for_seconds)}</td>
                <td className="num">{s.renewed_age_seconds == null ? "—" : `${fmtDuration(s.renewed_age_seconds)} ago`}</td>
                <td className="num">{s.token}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}
