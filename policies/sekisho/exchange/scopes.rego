# Which scopes
#
# Per-group grants on each downstream, narrowed by the tenant's and the caller's limits, and
# the step-up a scope's risk level demands (RFC 9470 insufficient_user_authentication).
package sekisho.exchange

import rego.v1

# METADATA
# description: >-
#   Catalogue scopes that any of the user's groups grants on this downstream, within the
#   tenant's and the caller's limits. A grant of a scope missing from the catalogue, or of a
#   scope whose risk level is not defined, never becomes a grant.
grantable_scopes contains scope if {
	grants := downstream.group_grants
	catalogue := downstream.scopes
	some group in input.subject.groups
	some scope in grants[group]
	catalogue[scope]
	_risk_defined(catalogue[scope])
	every limit in _scope_limits {
		scope in limit
	}
}

# The limits on grantable scopes: the `scopes` of the tenant's and of the caller's entry. An
# entry without `scopes` (or no entry) sets no limit; `scopes: []` allows nothing.
_scope_limits contains tenant_entry.scopes if tenant_entry.scopes

_scope_limits contains caller_entry.scopes if caller_entry.scopes

# A catalogue entry's risk level, if it names one, is defined in the registry.
_risk_defined(entry) if {
	not entry.risk
} else if {
	is_object(data.sekisho.registry.risk_levels[entry.risk])
}

requested_scopes := {scope | some scope in input.request.scopes}

default_scopes := {scope | some scope in object.get(downstream, "default_scopes", [])}

# METADATA
# description: >-
#   Granted = requested ∩ grantable; with nothing requested, the downstream's defaults (or
#   every grantable scope when it has none).
granted_scopes := grantable_scopes & requested_scopes if {
	count(requested_scopes) > 0
} else := grantable_scopes & default_scopes if {
	count(default_scopes) > 0
} else := grantable_scopes

# --- step-up ------------------------------------------------------------------------------------

# METADATA
# description: >-
#   [rank, level] of every risk level among the granted scopes whose authentication
#   requirement (acr in acr_values, auth_time within max_age seconds) the user does not meet.
unmet_risks contains [object.get(requirement, "rank", 0), level] if {
	some scope in granted_scopes
	level := downstream.scopes[scope].risk
	requirement := data.sekisho.registry.risk_levels[level]
	not _authentication_meets(requirement)
}

_authentication_meets(requirement) if {
	_acr_meets(requirement)
	_age_meets(requirement)
}

_acr_meets(requirement) if count(object.get(requirement, "acr_values", [])) == 0

_acr_meets(requirement) if input.subject.acr in requirement.acr_values

_age_meets(requirement) if object.get(requirement, "max_age", 0) == 0

_age_meets(requirement) if {
	is_number(requirement.max_age)
	input.subject.auth_time > 0
	input.now - input.subject.auth_time <= requirement.max_age
}

# The highest-ranked unmet level (ties: the last name in sort order) says what to ask for.
# Compared with `>` rather than max(): regopy's max/min/sort order numbers as strings.
step_up_level := risk[1] if {
	some risk in unmet_risks
	not risk in _outranked
}

_outranked contains risk if {
	some risk in unmet_risks
	some other in unmet_risks
	_outranks(other, risk)
}

_outranks(a, b) if a[0] > b[0]

_outranks(a, b) if {
	a[0] == b[0]
	a[1] > b[1]
}

# METADATA
# description: >-
#   What the agent should ask the IdP for (RFC 9470 section 3). Always defined, so a malformed
#   risk level still ends in this deny rather than in a later branch.
step_up := {"acr_values": _step_up_acr_values, "max_age": _step_up_max_age}

default _step_up_acr_values := ""

_step_up_acr_values := concat(" ", data.sekisho.registry.risk_levels[step_up_level].acr_values)

default _step_up_max_age := 0

_step_up_max_age := age if {
	age := data.sekisho.registry.risk_levels[step_up_level].max_age
	is_number(age)
}

default step_up_reason := "a scope needs stronger user authentication"

step_up_reason := sprintf("scope risk level %s needs stronger user authentication", [step_up_level])
