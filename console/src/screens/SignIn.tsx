import { useState } from "react";
import { ErrorBanner, Field } from "../ui";
import { signIn, type ApiError, type Session } from "../session";

export function SignIn({ onSignedIn }: { onSignedIn: (session: Session) => void }) {
  const [mode, setMode] = useState<"tenant" | "operator">("tenant");
  const [secret, setSecret] = useState("");
  const [error, setError] = useState<ApiError | Error | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <main id="main" className="signin">
      <h1>Sign in to The Warehouse Hub</h1>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(null);
          try {
            const session = await signIn(mode === "tenant" ? { apiKey: secret } : { adminToken: secret });
            setSecret("");
            onSignedIn(session);
          } catch (err) {
            setError(err as Error);
          } finally {
            setBusy(false);
          }
        }}
      >
        <fieldset>
          <legend>Sign in as</legend>
          <label>
            <input type="radio" name="mode" checked={mode === "tenant"} onChange={() => setMode("tenant")} /> A tenant
            (API key)
          </label>
          <label>
            <input type="radio" name="mode" checked={mode === "operator"} onChange={() => setMode("operator")} /> The
            platform operator (TWH_ADMIN_TOKEN)
          </label>
        </fieldset>
        <Field label={mode === "tenant" ? "API key" : "Admin token"}>
          <input
            type="password"
            autoComplete="off"
            required
            value={secret}
            onChange={(e) => setSecret(e.target.value)}
          />
        </Field>
        <ErrorBanner error={error} />
        <button type="submit" className="primary" disabled={busy}>
          Sign in
        </button>
        <p className="note">
          The key is exchanged for a session that lives in an HttpOnly cookie for 8 hours; the console never stores the
          key.
        </p>
      </form>
    </main>
  );
}
