# METADATA
# title: Sekisho default exchange policy
# description: >-
#   Grants scopes on a registered downstream from the user's groups. Everything an operator
#   changes day to day lives in data.sekisho.registry (policies/data/registry.json).
#   Contract: shared/design/ARCHITECTURE.md section 5; guide: docs/policy-authors.md.
package sekisho.exchange

import rego.v1

# An unknown audience and a user without any grant get the same answer, so the registry
# cannot be enumerated by probing audiences.
default decision := {"allow": false, "error": "access_denied", "reason": "no grant for this audience"}

decision := _deny("access_denied", "no grant for this audience") if {
	not has_access
} else := _deny("invalid_target", "resource is not registered for this audience") if {
	not resources_ok
} else := _deny("invalid_scope", "none of the requested scopes can be granted") if {
	count(granted_scopes) == 0
} else := object.union(_grant, _ttl)

_deny(error, reason) := {"allow": false, "error": error, "reason": reason}

# METADATA
# description: The registry entry for the requested audience (undefined when unregistered).
downstream := data.sekisho.registry.downstreams[input.request.audience]

has_access if {
	downstream
	tenant_ok
	caller_ok
	count(grantable_scopes) > 0
}

# A downstream bound to a tenant only serves users of that tenant.
tenant_ok if object.get(downstream, "tenant", "") == ""

tenant_ok if {
	downstream.tenant != ""
	downstream.tenant == input.subject.tenant
}

# When a downstream lists callers, only those workloads may request tokens for it.
caller_ok if count(object.get(downstream, "callers", {})) == 0

caller_ok if downstream.callers[input.caller.id]

# METADATA
# description: Catalogue scopes that any of the user's groups grants on this downstream.
grantable_scopes contains scope if {
	some group in input.subject.groups
	some scope in object.get(downstream, "group_grants", {})[group]
	downstream.scopes[scope]
}

requested_scopes := {scope | some scope in input.request.scopes}

default_scopes := {scope | some scope in object.get(downstream, "default_scopes", [])}

# Granted = requested ∩ grantable; with nothing requested, the downstream's defaults (or all).
granted_scopes := grantable_scopes & requested_scopes if {
	count(requested_scopes) > 0
} else := grantable_scopes & default_scopes if {
	count(default_scopes) > 0
} else := grantable_scopes

registered_resources := {r | some r in object.get(downstream, "resources", [])}

requested_resources := {r | some r in input.request.resources}

# The (audience, resource) pair must be registered (MCP Enterprise-Managed Authorization).
resources_ok if count(requested_resources - registered_resources) == 0

granted_resources := requested_resources if {
	count(requested_resources) > 0
} else := registered_resources

client_id := downstream.callers[input.caller.id].client_id

default client_id := ""

# Identity claims this downstream asks for, copied from the verified subject token.
propagated_claims[name] := input.subject.claims[name] if {
	some name in object.get(downstream, "propagate_claims", [])
}

_grant := {
	"allow": true,
	"scopes": sort(granted_scopes),
	"resources": sort(granted_resources),
	"client_id": client_id,
	"claims": propagated_claims,
	"reason": "granted by group membership",
}

_ttl := {"ttl_seconds": downstream.max_ttl_seconds} if {
	downstream.max_ttl_seconds
} else := {}
