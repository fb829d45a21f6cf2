# METADATA
# title: Sekisho default exchange policy
# description: >-
#   Grants scopes on a registered downstream from the user's groups. Everything an operator
#   changes day to day is data: data.sekisho.registry (policies/data/registry.json),
#   data.sekisho.denylist (denylist.json) and data.sekisho.consents (consents.json).
#   Contract: docs/architecture.md section 5; guide: docs/policy-authors.md.
#   The rules live in five modules of this package: decision.rego (the order of checks),
#   access.rego (the downstream, deny-list, tenants, callers), delegation.rego (actors),
#   scopes.rego (grants, step-up) and resources.rego (resources, consent, lifetime, claims).
#   access.rego uses no other
#   module and decision.rego is used by none: with `manage = true` OPA compiles each module as
#   Sekisho publishes it, so modules must not refer to each other in a cycle.
package sekisho.exchange

import rego.v1

# An unknown audience and a user without any grant get the same answer, so the registry
# cannot be enumerated by probing audiences.
default decision := {"allow": false, "error": "access_denied", "reason": "no grant for this audience"}

# METADATA
# description: >-
#   First matching branch wins. Every deny branch's value is always defined: a branch whose
#   value were undefined would fall through to the next one, ending in a grant.
decision := _deny("access_denied", "emergency deny-list") if {
	denylisted
} else := _deny("access_denied", "tenant asserted by an issuer the tenant does not trust") if {
	tenant_untrusted
} else := _deny("access_denied", "the actor may not act for this user") if {
	actor_refused
} else := _deny("access_denied", "no grant for this audience") if {
	not has_access
} else := _deny("invalid_target", "resource is not registered for this audience") if {
	not resources_ok
} else := _deny("invalid_scope", "none of the requested scopes can be granted") if {
	count(granted_scopes) == 0
} else := object.union(_deny("insufficient_user_authentication", step_up_reason), step_up) if {
	count(unmet_risks) > 0
} else := object.union(_deny("consent_required", consent_reason), consent) if {
	count(consent_missing) > 0
} else := grant if {
	# object.union_n(parts), built directly: the parts share no key, and a deep merge costs
	# the Wasm runtime more than copying the few keys.
	parts := [_grant, _ttl, _cache, delegation]
	grant := {key: value | some part in parts; some key, value in part}
}

_deny(error, reason) := {"allow": false, "error": error, "reason": reason}

has_access if {
	downstream
	tenant_ok
	caller_ok
	count(grantable_scopes) > 0
}

_grant := {
	"allow": true,
	"scopes": sort(granted_scopes),
	"resources": sort(granted_resources),
	"client_id": client_id,
	"claims": propagated_claims,
	"reason": "granted by group membership",
}

# --- decision cache -----------------------------------------------------------------------------

# METADATA
# description: >-
#   How long Sekisho may reuse this grant for an identical input (cache_ttl_seconds): the
#   registry's decision_cache_seconds, unless the grant depends on the clock (a granted scope
#   whose risk level has a max_age, or a consent-gated resource whose consent may expire).
#   Denials are never cached. Any policy or data reload empties the cache anyway.
_cache := {"cache_ttl_seconds": seconds} if {
	seconds := data.sekisho.registry.decision_cache_seconds
	is_number(seconds)
	seconds > 0
	not _time_dependent
} else := {}

_time_dependent if {
	some scope in granted_scopes
	level := downstream.scopes[scope].risk
	object.get(data.sekisho.registry.risk_levels[level], "max_age", 0) != 0
}

_time_dependent if {
	some uri in granted_resources
	resources[uri].consent
}
