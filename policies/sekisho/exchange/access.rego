# Who may ask at all
#
# The emergency deny-list, tenant isolation (which issuer may assert which tenant, which
# tenants a downstream serves) and which calling workloads may ask for a downstream.
package sekisho.exchange

import rego.v1

# The registry entry for the requested audience (undefined when unregistered).
downstream := data.sekisho.registry.downstreams[input.request.audience]

# --- emergency deny-list (data.sekisho.denylist) -----------------------------------------------

# METADATA
# description: >-
#   The user, the calling workload or an actor is on the emergency deny-list: an actor is the
#   actor token and each level of the subject and actor tokens' `act` chains, named as a user
#   and as a workload, as the revocation gate names it (red team session 14: a deny-listed user
#   or agent kept acting through an actor token or a nested `act`).
denylisted if _user_denylisted

# The caller is known by its registered id and its SPIFFE ID (when authenticated).
denylisted if {
	some id in [input.caller.id, input.caller.spiffe_id]
	id != ""
	_ := data.sekisho.denylist.callers[id]
}

denylisted if {
	some actor in _actors
	entry := data.sekisho.denylist.users[actor.sub]
	not _names_another_issuer(entry, actor.iss)
}

denylisted if {
	some actor in _actors
	_ := data.sekisho.denylist.callers[actor.sub]
}

# Any entry for the user's `sub` blocks it, unless the entry names another issuer: an entry
# without `issuer` (or a malformed one) blocks that `sub` at every trusted IdP.
_user_denylisted if {
	entry := data.sekisho.denylist.users[input.subject.sub]
	not _names_another_issuer(entry, input.subject.iss)
}

_names_another_issuer(entry, iss) if {
	is_string(entry.issuer)
	not entry.issuer in {"", iss}
}

# The tokens whose actors count: the subject token, and the actor token when there is one.
_delegating contains input.subject

_delegating contains input.actor if is_object(input.actor)

# Every actor, {"sub", "iss"}: the actor token's subject, and each level of an `act` chain (a
# level's `sub` is in its own `iss`, else in its token's issuer's namespace, RFC 8693 4.1).
_actors contains {"sub": input.actor.sub, "iss": input.actor.iss} if is_object(input.actor)

_actors contains {"sub": level.sub, "iss": _issuer_of(level, token)} if {
	some token in _delegating
	walk(object.get(token.claims, "act", null), [path, level])
	every step in path {
		step == "act"
	}
	is_string(level.sub)
}

_issuer_of(level, token) := level.iss if {
	is_string(level.iss)
	level.iss != ""
} else := token.iss

# --- tenants ------------------------------------------------------------------------------------

# METADATA
# description: >-
#   With several trusted IdPs, a tenant listed in data.sekisho.registry.tenants may only be
#   asserted by its own issuers: another IdP's `tenant` claim must not open a tenant's servers.
tenant_untrusted if {
	issuers := data.sekisho.registry.tenants[input.subject.tenant].issuers
	not input.subject.iss in issuers
}

# The per-tenant entry of a multi-tenant downstream for the user's tenant; false without one.
# (A rule that is undefined is evaluated again at every reference; false is computed once, and
# every use below treats it as "no entry", as it would an undefined value.)
default tenant_entry := false

tenant_entry := downstream.tenants[input.subject.tenant] if input.subject.tenant != ""

# METADATA
# description: >-
#   A downstream bound to one `tenant` serves only that tenant; a multi-tenant one (`tenants`)
#   serves the tenants it lists; one with neither serves everyone. Matching is exact.
tenant_ok if {
	object.get(downstream, "tenant", "") == ""
	count(object.get(downstream, "tenants", {})) == 0
} else if {
	downstream.tenant != ""
	downstream.tenant == input.subject.tenant
} else if {
	tenant_entry
}

# --- callers ------------------------------------------------------------------------------------

# METADATA
# description: >-
#   When a downstream lists callers (by caller id or SPIFFE ID), only those workloads may
#   request tokens for it.
caller_ok if {
	count(object.get(downstream, "callers", {})) == 0
} else if {
	caller_entry
}

# METADATA
# description: >-
#   The caller's entry in the downstream's `callers`, by id first, then SPIFFE ID; false
#   without one (as for tenant_entry).
default caller_entry := false

caller_entry := downstream.callers[input.caller.id] if {
	input.caller.id != ""
} else := downstream.callers[input.caller.spiffe_id] if {
	input.caller.spiffe_id != ""
}

default client_id := ""

# The caller's client id at the downstream ("" = the subject token's client id).
client_id := caller_entry.client_id if is_string(caller_entry.client_id)
