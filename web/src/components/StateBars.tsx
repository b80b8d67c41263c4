import type { StatsRow } from "../api/client";
import { RUN_STATES, sum } from "../format";

export interface Group {
  key: string;
  counts: Record<string, number>;
  total: number;
}

/** Rows (source, domain, state, count) → one group per source or per domain. */
export function groupStats(rows: StatsRow[], by: "source" | "domain"): Group[] {
  const m = new Map<string, Record<string, number>>();
  for (const r of rows) {
    const k = by === "source" ? r.source : r.domain;
    const c = m.get(k) ?? {};
    c[r.state] = (c[r.state] ?? 0) + r.count;
    m.set(k, c);
  }
  return Array.from(m, ([key, counts]) => ({ key, counts, total: sum(Object.values(counts)) })).sort(
    (a, b) => b.total - a.total || a.key.localeCompare(b.key),
  );
}

export function totalsByState(rows: StatsRow[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const r of rows) t[r.state] = (t[r.state] ?? 0) + r.count;
  return t;
}

/** Stacked horizontal bars, one per group, with the numbers in a table for screen readers. */
export function StateBars({ groups, link }: { groups: Group[]; link?: (key: string) => string }) {
  const max = Math.max(1, ...groups.map((g) => g.total));
  return (
    <table className="bars">
      <thead>
        <tr>
          <th scope="col">name</th>
          <th scope="col">runs by state</th>
          <th scope="col" className="num">
            total
          </th>
        </tr>
      </thead>
      <tbody>
        {groups.map((g) => (
          <tr key={g.key} data-testid={`bar-${g.key}`}>
            <th scope="row">{link ? <a href={link(g.key)}>{g.key}</a> : g.key}</th>
            <td>
              <div className="stack" style={{ width: `${(100 * g.total) / max}%` }}>
                {RUN_STATES.filter((s) => g.counts[s]).map((s) => (
                  <span
                    key={s}
                    className={`seg bg-${s}`}
                    style={{ flexGrow: g.counts[s] }}
                    title={`${s}: ${g.counts[s]}`}
                  >
                    <span className="sr-only">
                      {s} {g.counts[s]}
                    </span>
                  </span>
                ))}
              </div>
            </td>
            <td className="num">{g.total}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Legend() {
  return (
    <div className="legend" aria-hidden="true">
      {RUN_STATES.map((s) => (
        <span key={s}>
          <span className={`swatch bg-${s}`} /> {s}
        </span>
      ))}
    </div>
  );
}
