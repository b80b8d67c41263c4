import { useState } from "react";
import { ApiError } from "../api/client";
import { useAuth } from "../auth";

export function Login() {
  const { login, sso } = useAuth();
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <div className="login">
      <form
        className="login-card"
        onSubmit={(e) => {
          e.preventDefault();
          if (!token.trim()) {
            setError("Paste an API token first.");
            return;
          }
          setBusy(true);
          setError(null);
          login(token)
            .catch((err: unknown) =>
              setError(err instanceof ApiError ? err.message : "The gateway cannot be reached."),
            )
            .finally(() => setBusy(false));
        }}
      >
        <h1>
          <span className="logo" aria-hidden="true">▲</span> Accord
        </h1>
        <p className="muted">One control plane for the schedulers you already run.</p>
        {sso && (
          <>
            <a
              className="button primary"
              data-testid="sso-login"
              href={`/auth/login?return_to=${encodeURIComponent("/" + location.hash)}`}
            >
              Sign in with single sign-on
            </a>
            <p className="muted small">or with an API token:</p>
          </>
        )}
        <label htmlFor="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          autoFocus
          placeholder="acd_…"
          value={token}
          onChange={(e) => setToken(e.target.value)}
        />
        <p className="muted small">
          Create one with <code>accord tokens create --subject NAME --role viewer</code>. The token is
          kept in this tab only (session storage) and sent as a header, never in a URL.
        </p>
        {error && (
          <p className="form-error" role="alert">
            {error}
          </p>
        )}
        <button className="primary" type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </div>
  );
}
