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
# description: The user or the calling workload is on the emergency deny-list.
denylisted if _user_denylisted

denylisted if {
	some id in _caller_ids
	_ := data.sekisho.denylist.callers[id]
}

# Any entry for the user's `sub` blocks it, unless the entry names another issuer: an entry
# without `issuer` (or a malformed one) blocks that `sub` at every trusted IdP.
_user_denylisted if {
	entry := data.sekisho.denylist.users[input.subject.sub]
	not _names_another_issuer(entry)
}

_names_another_issuer(entry) if {
	is_string(entry.issuer)
	not entry.issuer in {"", input.subject.iss}
}

# The identities a caller is known by: its registered id and its SPIFFE ID (when authenticated).
_caller_ids contains id if {
	some id in [input.caller.id, input.caller.spiffe_id]
	id != ""
}

# --- tenants ------------------------------------------------------------------------------------

# METADATA
# description: >-
#   With several trusted IdPs, a tenant listed in data.sekisho.registry.tenants may only be
#   asserted by its own issuers: another IdP's `tenant` claim must not open a tenant's servers.
tenant_untrusted if {
	issuers := data.sekisho.registry.tenants[input.subject.tenant].issuers
	not input.subject.iss in issuers
}

_tenants := object.get(downstream, "tenants", {})

# The per-tenant entry of a multi-tenant downstream for the user's tenant.
tenant_entry := _tenants[input.subject.tenant] if input.subject.tenant != ""

# METADATA
# description: >-
#   A downstream bound to one `tenant` serves only that tenant; a multi-tenant one (`tenants`)
#   serves the tenants it lists; one with neither serves everyone. Matching is exact.
tenant_ok if {
	object.get(downstream, "tenant", "") == ""
	count(_tenants) == 0
}

tenant_ok if {
	downstream.tenant != ""
	downstream.tenant == input.subject.tenant
}

tenant_ok if tenant_entry

# --- callers ------------------------------------------------------------------------------------

_callers := object.get(downstream, "callers", {})

# METADATA
# description: >-
#   When a downstream lists callers (by caller id or SPIFFE ID), only those workloads may
#   request tokens for it.
caller_ok if count(_callers) == 0

caller_ok if caller_entry

# METADATA
# description: The caller's entry in the downstream's `callers`, by id first, then SPIFFE ID.
caller_entry := _callers[input.caller.id] if {
	input.caller.id != ""
} else := _callers[input.caller.spiffe_id] if {
	input.caller.spiffe_id != ""
}

default client_id := ""

# The caller's client id at the downstream ("" = the subject token's client id).
client_id := caller_entry.client_id if is_string(caller_entry.client_id)
