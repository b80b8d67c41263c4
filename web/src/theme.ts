import { useEffect, useState } from "react";

export type Theme = "light" | "dark";
const KEY = "accord.theme";

function systemTheme(): Theme {
  return globalThis.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

/** Follows prefers-color-scheme until the user picks one with the toggle. */
export function useTheme(): [Theme, () => void] {
  const [chosen, setChosen] = useState<Theme | null>(
    () => (localStorage.getItem(KEY) as Theme | null) ?? null,
  );
  const [system, setSystem] = useState<Theme>(systemTheme);
  useEffect(() => {
    const mq = globalThis.matchMedia?.("(prefers-color-scheme: dark)");
    if (!mq) return;
    const on = () => setSystem(mq.matches ? "dark" : "light");
    mq.addEventListener("change", on);
    return () => mq.removeEventListener("change", on);
  }, []);
  const theme = chosen ?? system;
  useEffect(() => {
    document.documentElement.dataset.theme = theme;
  }, [theme]);
  const toggle = () => {
    const next: Theme = theme === "dark" ? "light" : "dark";
    localStorage.setItem(KEY, next);
    setChosen(next);
  };
  return [theme, toggle];
}
