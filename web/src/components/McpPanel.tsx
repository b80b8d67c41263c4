import { useState } from "react";

/** Where AI agents connect: the gateway's MCP endpoint, and how to get an agent token. */
export function McpPanel({ origin = window.location.origin }: { origin?: string }) {
  const url = `${origin.replace(/\/$/, "")}/mcp`;
  const [copied, setCopied] = useState(false);
  const copy = () => {
    void navigator.clipboard?.writeText(url).then(() => setCopied(true));
  };
  return (
    <section className="card mcp-panel" aria-labelledby="mcp-title" data-testid="mcp-panel">
      <div className="card-head">
        <h2 id="mcp-title">AI agents (MCP)</h2>
      </div>
      <div className="card-body">
      <p>
        Agents reach every source above through one governed door: MCP over streamable HTTP at{" "}
        <code data-testid="mcp-url">{url}</code>{" "}
        <button type="button" onClick={copy}>
          {copied ? "Copied" : "Copy"}
        </button>
      </p>
      <p className="small muted">
        They need an agent token (<code>accord tokens create --kind agent</code>); local agents can run{" "}
        <code>accord mcp</code> over stdio instead. Their roles, agent limits, freezes and approvals apply, and every
        call is audited. See the AI agents page of the documentation.
      </p>
      </div>
    </section>
  );
}
