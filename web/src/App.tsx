import { lazy, Suspense, useEffect } from "react";
import { useAuth } from "./auth";
import { installShortcuts, Layout } from "./components/Layout";
import { Empty, Loading } from "./components/ui";
import { Jobs } from "./pages/Jobs";
import { Login } from "./pages/Login";
import { Overview } from "./pages/Overview";
import { type Route, useRoute } from "./router";

// Pages other than the overview and the jobs list load on first use (the lineage graph
// and its layout are the largest part of the bundle).
const Audit = lazy(() => import("./pages/Audit").then((m) => ({ default: m.Audit })));
const Governance = lazy(() => import("./pages/Governance").then((m) => ({ default: m.Governance })));
const JobDetail = lazy(() => import("./pages/JobDetail").then((m) => ({ default: m.JobDetail })));
const LineagePage = lazy(() => import("./pages/LineageModes").then((m) => ({ default: m.LineageModes })));
const RunDetail = lazy(() => import("./pages/RunDetail").then((m) => ({ default: m.RunDetail })));
const Runs = lazy(() => import("./pages/Runs").then((m) => ({ default: m.Runs })));
const Sources = lazy(() => import("./pages/Sources").then((m) => ({ default: m.Sources })));
const Forecast = lazy(() => import("./pages/Forecast").then((m) => ({ default: m.Forecast })));
const Slas = lazy(() => import("./pages/Slas").then((m) => ({ default: m.Slas })));
const Dependencies = lazy(() => import("./pages/Dependencies").then((m) => ({ default: m.Dependencies })));








function Page({ route }: { route: Route }) {
  const [first, ...rest] = route.segments;
  const uid = rest.join("/");
  switch (first ?? "") {
    case "":
      return <Overview />;
    case "jobs":
      return uid ? <JobDetail uid={uid} /> : <Jobs route={route} />;
    case "runs":
      return uid ? <RunDetail uid={uid} /> : <Runs route={route} />;
    case "lineage":
      return <LineagePage route={route} />;
    case "governance":
      return <Governance />;
    case "audit":
      return <Audit route={route} />;
    case "sources":
      return <Sources />;
    case "forecast":
      return <Forecast />;
    case "slas":
      return <Slas route={route} />;
    case "dependencies":
      return <Dependencies />;
    default:
      return (
        <Empty>
          <h1>Page not found</h1>
          <p>
            There is no page at <code>{route.path}</code>. <a href="#/">Go to the overview</a>.
          </p>
        </Empty>
      );
  }
}

export function App() {
  const { me } = useAuth();
  const route = useRoute();
  useEffect(() => installShortcuts(), []);
  useEffect(() => {
    const [first] = route.segments;
    document.title = `${first ? first[0].toUpperCase() + first.slice(1) : "Overview"} · Accord`;
  }, [route]);
  if (!me) return <Login />;
  return (
    <Layout route={route}>
      <Suspense fallback={<Loading what="the page" />}>
        <Page route={route} />
      </Suspense>
    </Layout>
  );
}
