// The shell: sign-in, the screens a role may use, a command palette (Ctrl+K), and routing
// under /console/ without a reload.
import { useCallback, useEffect, useMemo, useState } from "react";
import { Provider } from "urql";
import { makeClient } from "./client";
import { Developers } from "./screens/Developers";
import { Imports } from "./screens/Imports";
import { Operators } from "./screens/Operators";
import { Orders } from "./screens/Orders";
import { SignIn } from "./screens/SignIn";
import { Stock } from "./screens/Stock";
import { Webhooks } from "./screens/Webhooks";
import { RoleContext, can } from "./role";
import { currentSession, signOut, type Session } from "./session";

type Screen = { path: string; title: string; render: () => React.ReactNode; developers?: boolean };

const TENANT_SCREENS: Screen[] = [
  { path: "stock", title: "Stock", render: () => <Stock /> },
  { path: "webhooks", title: "Webhooks", render: () => <Webhooks />, developers: true },
  { path: "orders", title: "Orders", render: () => <Orders /> },
  { path: "imports", title: "Imports and exports", render: () => <Imports /> },
  { path: "developers", title: "Developers", render: () => <Developers /> },
];
const OPERATOR_SCREENS: Screen[] = [{ path: "operators", title: "Operators", render: () => <Operators /> }];

function screenPath(): string {
  return location.pathname.replace(/^\/console\/?/, "").split("/")[0] ?? "";
}

export function navigate(path: string) {
  history.pushState(null, "", `/console/${path}`);
  window.dispatchEvent(new PopStateEvent("popstate"));
}

export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [path, setPath] = useState(screenPath());
  const [palette, setPalette] = useState(false);

  useEffect(() => {
    currentSession().then(setSession, () => setSession(null));
    const onPop = () => setPath(screenPath());
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);

  const ended = useCallback(() => setSession(null), []);
  const client = useMemo(() => (session ? makeClient(ended) : null), [session, ended]);
  const screens =
    session?.kind === "operator"
      ? OPERATOR_SCREENS
      : TENANT_SCREENS.filter((s) => !s.developers || can(session?.role ?? null).develop);
  const screen = screens.find((s) => s.path === path) ?? screens[0];

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "k") {
        e.preventDefault();
        setPalette((open) => !open);
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  if (session === undefined) return <p className="loading">Loading…</p>;
  if (session === null || !client) return <SignIn onSignedIn={setSession} />;

  const who =
    session.kind === "operator" ? "Platform operator" : `Tenant ${session.tenantId} · ${session.role}`;
  return (
    <Provider value={client}>
      <RoleContext.Provider value={session.role}>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <strong className="brand">The Warehouse Hub</strong>
        <nav aria-label="screens">
          {screens.map((s) => (
            <a
              key={s.path}
              href={`/console/${s.path}`}
              aria-current={s === screen ? "page" : undefined}
              onClick={(e) => {
                e.preventDefault();
                navigate(s.path);
              }}
            >
              {s.title}
            </a>
          ))}
        </nav>
        <span className="who">{who}</span>
        <button type="button" onClick={() => setPalette(true)} aria-keyshortcuts="Control+K">
          Commands <kbd>Ctrl K</kbd>
        </button>
        <button
          type="button"
          onClick={async () => {
            await signOut();
            setSession(null);
          }}
        >
          Sign out
        </button>
      </header>
      <main id="main" tabIndex={-1}>
        <h1>{screen.title}</h1>
        {screen.render()}
      </main>
      {palette && <Palette screens={screens} onClose={() => setPalette(false)} />}
      </RoleContext.Provider>
    </Provider>
  );
}

function Palette({ screens, onClose }: { screens: Screen[]; onClose: () => void }) {
  const [text, setText] = useState("");
  const [active, setActive] = useState(0);
  const matches = screens.filter((s) => s.title.toLowerCase().includes(text.toLowerCase()));
  const go = (s: Screen | undefined) => {
    if (!s) return;
    navigate(s.path);
    onClose();
  };
  return (
    <div className="backdrop" onClick={onClose}>
      <div className="dialog palette" role="dialog" aria-modal="true" aria-label="Command palette" onClick={(e) => e.stopPropagation()}>
        <input
          autoFocus
          aria-label="Go to"
          placeholder="Go to…"
          value={text}
          onChange={(e) => {
            setText(e.target.value);
            setActive(0);
          }}
          onKeyDown={(e) => {
            if (e.key === "Escape") onClose();
            if (e.key === "ArrowDown") setActive((a) => Math.min(a + 1, matches.length - 1));
            if (e.key === "ArrowUp") setActive((a) => Math.max(a - 1, 0));
            if (e.key === "Enter") go(matches[active]);
          }}
        />
        <ul role="listbox" aria-label="screens">
          {matches.map((s, i) => (
            <li key={s.path} role="option" aria-selected={i === active} onClick={() => go(s)}>
              {s.title}
            </li>
          ))}
        </ul>
      </div>
    </div>
  );
}
