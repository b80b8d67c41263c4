import "@xyflow/react/dist/style.css";
import {
  Background,
  Controls,
  type Edge,
  MarkerType,
  type Node,
  Position,
  ReactFlow,
  ReactFlowProvider,
} from "@xyflow/react";
import { useMemo } from "react";
import type { Lineage } from "../api/client";
import { highlights, layout, NODE_H, NODE_W } from "../lineage";

export function LineageGraph({
  data,
  selected,
  impact,
  onSelect,
  onOpen,
  critical,
  height = 520,
}: {
  data: Lineage;
  selected: string | null;
  impact: boolean;
  onSelect: (uid: string | null) => void;
  onOpen?: (uid: string) => void;
  /** Job uids on an SLA's critical path: drawn highlighted whatever the selection. */
  critical?: string[];
  height?: number;
}) {
  const pos = useMemo(() => layout(data.nodes, data.edges), [data]);
  const hl = useMemo(
    () => highlights(data.nodes, data.edges, selected, impact),
    [data, selected, impact],
  );
  const nodes: Node[] = useMemo(
    () =>
      data.nodes.map((n) => ({
        id: n.uid,
        position: pos.get(n.uid) ?? { x: 0, y: 0 },
        sourcePosition: Position.Right,
        targetPosition: Position.Left,
        data: {
          label: (
            <div className="lnode-inner" data-testid={`lnode-${n.uid}`} title={n.uid}>
              <span className="lnode-kind">{n.kind === "dataset" ? "dataset" : n.source}</span>
              <span className="lnode-name">{n.name}</span>
            </div>
          ),
        },
        className: [
          "lnode",
          `lnode-${n.kind}`,
          n.last_run_state ? `lstate-${n.last_run_state}` : "",
          critical?.includes(n.uid) ? "hl-critical" : `hl-${hl.get(n.uid) ?? "none"}`,
          n.uid === data.root ? "lnode-root" : "",
          n.tombstoned ? "lnode-gone" : "",
        ].join(" "),
        ariaLabel: `${n.kind} ${n.uid}${n.last_run_state ? `, last run ${n.last_run_state}` : ""}`,
        // Fixed sizes: React Flow need not measure each node before it can fit the view.
        width: NODE_W,
        height: NODE_H,
        style: { width: NODE_W, height: NODE_H },
      })),
    [data, pos, hl, critical],
  );
  const edges: Edge[] = useMemo(
    () =>
      data.edges.map((e) => {
        const a = hl.get(e.src);
        const b = hl.get(e.dst);
        const lit =
          selected &&
          a !== "dim" &&
          b !== "dim" &&
          !(impact && (a === "upstream" || b === "upstream"));
        return {
          id: `${e.kind}:${e.src}->${e.dst}`,
          source: e.src,
          target: e.dst,
          className: `ledge ledge-${e.kind} ${selected ? (lit ? "lit" : "dim") : ""}`,
          markerEnd: { type: MarkerType.ArrowClosed, width: 16, height: 16 },
          label: e.kind === "depends_on" ? undefined : e.kind,
        };
      }),
    [data, hl, selected, impact],
  );
  return (
    <div className="graph" style={{ height }} data-testid="lineage-graph">
      <ReactFlowProvider>
        <ReactFlow
          nodes={nodes}
          edges={edges}
          fitView
          fitViewOptions={{ padding: 0.08, maxZoom: 1.25 }}
          // Large neighbourhoods draw only what is on screen.
          onlyRenderVisibleElements={data.nodes.length > 300}
          minZoom={0.05}
          nodesDraggable={false}
          nodesConnectable={false}
          onNodeClick={(_, n) => onSelect(n.id === selected ? null : n.id)}
          onNodeDoubleClick={(_, n) => onOpen?.(n.id)}
          onPaneClick={() => onSelect(null)}
          proOptions={{ hideAttribution: true }}
        >
          <Background gap={24} />
          <Controls showInteractive={false} />
        </ReactFlow>
      </ReactFlowProvider>
    </div>
  );
}
