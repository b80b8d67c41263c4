import { useQuery } from "@tanstack/react-query";
import { useEffect, useId, useState } from "react";
import { api, unwrap } from "../api/client";

/** How many matches the list shows at once; the search runs on the server over all jobs. */
export const PICKER_LIMIT = 20;

/** A searchable combobox over every job the caller can see (ARIA 1.2 combobox pattern):
 *  typing asks the jobs API (`q`, which matches name, uid and description), arrows move,
 *  Enter or a click picks. */
export function JobPicker({
  value,
  onPick,
  label = "start from job",
  id = "l-job",
}: {
  value: string;
  onPick: (uid: string) => void;
  label?: string;
  id?: string;
}) {
  const listId = useId();
  const [text, setText] = useState(value);
  const [query, setQuery] = useState("");
  const [open, setOpen] = useState(false);
  const [active, setActive] = useState(0);
  useEffect(() => setText(value), [value]);
  useEffect(() => {
    const t = setTimeout(() => setQuery(text === value ? "" : text.trim()), 200);
    return () => clearTimeout(t);
  }, [text, value]);
  const found = useQuery({
    queryKey: ["jobs", "picker", query],
    enabled: open,
    queryFn: () =>
      unwrap(
        api.GET("/api/v1/jobs", {
          params: { query: { q: query || undefined, limit: PICKER_LIMIT } },
        }),
      ),
    placeholderData: (prev) => prev,
  });
  const items = found.data?.items ?? [];
  const more = !!found.data?.next_cursor;
  useEffect(() => setActive(0), [query]);
  const pick = (uid: string) => {
    setOpen(false);
    setText(uid);
    onPick(uid);
  };
  return (
    <div className="field grow combo">
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        type="text"
        role="combobox"
        aria-expanded={open}
        aria-controls={listId}
        aria-autocomplete="list"
        aria-activedescendant={open && items[active] ? `${listId}-${active}` : undefined}
        autoComplete="off"
        value={text}
        placeholder="type to search all jobs: name, uid or description"
        onFocus={() => setOpen(true)}
        onBlur={() => setTimeout(() => setOpen(false), 150)}
        onChange={(e) => {
          setText(e.target.value);
          setOpen(true);
        }}
        onKeyDown={(e) => {
          if (e.key === "ArrowDown") {
            e.preventDefault();
            setOpen(true);
            setActive((a) => Math.min(a + 1, Math.max(0, items.length - 1)));
          } else if (e.key === "ArrowUp") {
            e.preventDefault();
            setActive((a) => Math.max(a - 1, 0));
          } else if (e.key === "Enter") {
            e.preventDefault();
            const chosen = open ? items[active] : undefined;
            if (chosen) pick(chosen.uid);
            else if (text.trim()) pick(text.trim());
          } else if (e.key === "Escape") {
            setOpen(false);
          }
        }}
      />
      {open && (
        <ul className="combo-list" id={listId} role="listbox" aria-label="matching jobs">
          {items.map((j, i) => (
            <li
              key={j.uid}
              id={`${listId}-${i}`}
              role="option"
              aria-selected={i === active}
              onMouseDown={(e) => {
                e.preventDefault();
                pick(j.uid);
              }}
              onMouseEnter={() => setActive(i)}
            >
              <span>{j.name}</span>
              <span className="combo-uid">{j.uid}</span>
            </li>
          ))}
          <li className="combo-note" role="presentation" data-testid="picker-note">
            {found.isPending
              ? "Searching…"
              : found.isError
                ? "The search failed."
                : items.length === 0
                  ? "No job matches."
                  : more
                    ? `the first ${items.length} matches: type more to narrow`
                    : `${items.length} matching job${items.length === 1 ? "" : "s"}`}
          </li>
        </ul>
      )}
    </div>
  );
}
