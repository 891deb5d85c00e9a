// What the signed-in role may do, mirroring the server's guard table
// (server/src/auth/guards.rs): the console does not offer what the role cannot do.
import { createContext, useContext } from "react";

const RANK: Record<string, number> = { owner: 0, admin: 1, developer: 2, operator: 3, viewer: 4 };

export const RoleContext = createContext<string | null>(null);

export function useCan() {
  return can(useContext(RoleContext));
}

/** What `role` may do (a platform operator's session has no tenant role: nothing of these). */
export function can(role: string | null) {
  const rank = RANK[role ?? "viewer"] ?? 4;
  return {
    /** Stock changes, order transitions, imports (operators and above). */
    write: rank <= RANK.operator,
    /** Webhooks and API keys (developers and above). */
    develop: rank <= RANK.developer,
    /** The audit log (admins and owners). */
    audit: rank <= RANK.admin,
  };
}
