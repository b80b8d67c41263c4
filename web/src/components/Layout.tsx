import { type ReactNode, useEffect, useState } from "react";
import { useAuth } from "../auth";
import { useLiveEvents } from "../live";
import type { Route } from "../router";
import { useTheme } from "../theme";

const NAV: { path: string; label: string; key: string }[] = [
  { path: "/", label: "Overview", key: "o" },
  { path: "/jobs", label: "Jobs", key: "j" },
  { path: "/runs", label: "Runs", key: "r" },
  { path: "/lineage", label: "Lineage", key: "l" },
  { path: "/forecast", label: "Forecast", key: "f" },
  { path: "/slas", label: "SLAs", key: "e" },
  { path: "/dependencies", label: "Dependencies", key: "d" },
  { path: "/governance", label: "Governance", key: "g" },
  { path: "/audit", label: "Audit", key: "a" },
  { path: "/sources", label: "Sources", key: "s" },
];

export function currentSection(route: Route): string {
  const first = route.segments[0] ?? "";
  return first ? `/${first}` : "/";
}

export function Layout({ route, children }: { route: Route; children: ReactNode }) {
  const { me, logout } = useAuth();
  const [theme, toggle] = useTheme();
  const live = useLiveEvents(!!me);
  const section = currentSection(route);
  // On a narrow screen the navigation folds into a menu button; it closes on navigation.
  const [navOpen, setNavOpen] = useState(false);
  useEffect(() => setNavOpen(false), [section]);
  return (
    <div className={`shell${navOpen ? " nav-open" : ""}`}>
      <a className="skip" href="#main" onClick={(e) => {
        e.preventDefault();
        document.getElementById("main")?.focus();
      }}>
        Skip to content
      </a>
      <nav className="sidebar" aria-label="Main">
        <div className="brand">
          <span>
            <span className="logo" aria-hidden="true">▲</span> Accord
          </span>
          <button
            type="button"
            className="nav-toggle"
            aria-expanded={navOpen}
            aria-controls="nav-list"
            onClick={() => setNavOpen((o) => !o)}
          >
            <span aria-hidden="true">☰</span> Menu
          </button>
        </div>
        <ul id="nav-list">
          {NAV.map((n) => (
            <li key={n.path}>
              <a
                href={`#${n.path}`}
                aria-current={section === n.path ? "page" : undefined}
                title={`${n.label} (g then ${n.key})`}
              >
                {n.label}
              </a>
            </li>
          ))}
        </ul>
        <div className="sidebar-foot">
          <span className={`live live-${live.status}`} role="status" title="live updates from the event stream">
            <span className="dot" aria-hidden="true" />
            {live.status === "live" ? "live" : live.status === "connecting" ? "connecting…" : "offline, retrying"}
          </span>
        </div>
      </nav>
      <div className="main-col">
        <header className="topbar">
          <div className="who">
            Signed in as <strong data-testid="subject">{me?.subject}</strong>
            {me?.roles.map((r) => (
              <span key={`${r.role}@${r.domain}`} className="tag">
                {r.role}
                {r.domain !== "*" ? ` in ${r.domain}` : ""}
              </span>
            ))}
          </div>
          <div className="top-actions">
            <button type="button" onClick={toggle} aria-label={`Switch to ${theme === "dark" ? "light" : "dark"} mode`}>
              {theme === "dark" ? "☀ Light" : "☾ Dark"}
            </button>
            <button type="button" onClick={logout}>
              Sign out
            </button>
          </div>
        </header>
        <main id="main" tabIndex={-1}>
          {children}
        </main>
      </div>
    </div>
  );
}

/** "g" then a letter jumps to a section (outside text fields). */
export function installShortcuts(): () => void {
  let armed = 0;
  const on = (e: KeyboardEvent) => {
    const t = e.target as HTMLElement | null;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (e.key === "g") {
      armed = Date.now();
      return;
    }
    if (armed && Date.now() - armed < 1500) {
      const n = NAV.find((x) => x.key === e.key);
      armed = 0;
      if (n) location.hash = `#${n.path}`;
    }
  };
  document.addEventListener("keydown", on);
  return () => document.removeEventListener("keydown", on);
}
