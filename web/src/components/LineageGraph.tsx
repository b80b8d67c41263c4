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
  useReactFlow,
} from "@xyflow/react";
import { useEffect, useMemo, useRef, useState } from "react";
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
              {n.kind === "dataset" ? (
                // A dataset's name is often long (schema.table): two lines, no kind line
                // (the dashed, rounded shape and ◇ say "dataset").
                <span className="lnode-name lnode-name-2">{`◇\u00a0${n.name}`}</span>
              ) : (
                <>
                  <span className="lnode-kind">{n.source}</span>
                  <span className="lnode-name">{n.name}</span>
                </>
              )}
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
          // No text on the edge: on a dense graph the labels overlapped each other and the
          // nodes. The kind is in the edge's style (dashed: a dataset edge; see the legend)
          // and in its accessible name.
          ariaLabel: `${e.src} ${e.kind.replace("_", " ")} ${e.dst}`,
        };
      }),
    [data, hl, selected, impact],
  );
  // The canvas is as tall as the laid-out graph needs (up to `height`), so a small graph
  // is not a speck in a large empty box.
  const fitted = useMemo(() => {
    let bottom = 0;
    let right = 0;
    for (const p of pos.values()) {
      bottom = Math.max(bottom, p.y + NODE_H);
      right = Math.max(right, p.x + NODE_W);
    }
    return { bottom, right };
  }, [pos]);
  const box = useRef<HTMLDivElement>(null);
  const [boxWidth, setBoxWidth] = useState(0);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    if (typeof ResizeObserver === "undefined") {
      setBoxWidth(el.clientWidth || 800);
      return;
    }
    const ro = new ResizeObserver(([e]) => setBoxWidth(e.contentRect.width));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  // At the zoom that fits the width, how tall is the graph? (capped at FIT.maxZoom)
  const zoom = boxWidth && fitted.right ? Math.min(FIT.maxZoom, boxWidth / (fitted.right * (1 + 2 * FIT.padding))) : 1;
  const canvas = Math.round(Math.max(220, Math.min(height, fitted.bottom * zoom * (1 + 2 * FIT.padding) + 70)));
  return (
    <div className="graph" ref={box} style={{ height: canvas }} data-testid="lineage-graph">
      {/* Drawn once the canvas width is known, so the first fit is at the final size. */}
      {boxWidth > 0 && (
        <ReactFlowProvider>
          <ReactFlow
            nodes={nodes}
            edges={edges}
            fitView
            fitViewOptions={FIT}
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
            <Controls showInteractive={false} fitViewOptions={FIT} orientation="horizontal" />
            <FitOnChange data={data} canvas={canvas} />
          </ReactFlow>
        </ReactFlowProvider>
      )}
    </div>
  );
}

const FIT = { padding: 0.1, maxZoom: 1.4 };

/** Fit the view again whenever another graph is shown or the canvas changes size (React
 *  Flow fits only on mount). */
function FitOnChange({ data, canvas }: { data: Lineage; canvas: number }) {
  const flow = useReactFlow();
  useEffect(() => {
    const t = setTimeout(() => void flow.fitView(FIT), 0);
    return () => clearTimeout(t);
  }, [data, canvas, flow]);
  return null;
}
