# Which resources, for how long, with which claims
#
# The (audience, resource) binding of the MCP Enterprise-Managed Authorization profile,
# per-resource user consent, lifetime caps and the identity claims each resource receives.
package sekisho.exchange

import rego.v1

# `resources` is an object (resource URI → settings) or, without settings, an array of URIs.
_resource_map(resources) := resources if is_object(resources)

_resource_map(resources) := {uri: {} | some uri in resources} if is_array(resources)

# METADATA
# description: >-
#   The resources registered for this audience, for this user: a multi-tenant downstream's
#   tenant entry may list its own.
resources := _resource_map(tenant_entry.resources) if {
	tenant_entry.resources
} else := _resource_map(object.get(downstream, "resources", []))

registered_resources := {uri | some uri in object.keys(resources)}

requested_resources := {uri | some uri in input.request.resources}

# METADATA
# description: >-
#   Every requested resource is registered for the audience (MCP Enterprise-Managed
#   Authorization binds the pair), and one was requested if the downstream requires it.
resources_ok if {
	count(requested_resources - registered_resources) == 0
	_resource_requested_if_required
}

_resource_requested_if_required if not downstream.require_resource

_resource_requested_if_required if count(requested_resources) > 0

granted_resources := requested_resources if {
	count(requested_resources) > 0
} else := registered_resources

# --- consent ------------------------------------------------------------------------------------

# METADATA
# description: >-
#   Granted resources flagged `consent` that this user has not consented to, per
#   data.sekisho.consents[issuer][sub][resource] (a record with optional `expires_at`).
consent_missing contains uri if {
	some uri in granted_resources
	resources[uri].consent
	not _consented(uri)
}

_consented(uri) if {
	record := data.sekisho.consents[input.subject.iss][input.subject.sub][uri]
	object.get(record, "expires_at", 0) == 0
}

_consented(uri) if {
	record := data.sekisho.consents[input.subject.iss][input.subject.sub][uri]
	is_number(record.expires_at)
	input.now < record.expires_at
}

# The first missing resource in sort order (strings: min() agrees in both engines) is the one
# the agent shows the user.
consent_resource := min(consent_missing)

# METADATA
# description: Where the agent sends the user to consent, then retries. Always defined.
consent := {"authorization_url": _consent_url}

default _consent_url := ""

_consent_url := url if {
	url := resources[consent_resource].consent.authorization_url
	is_string(url)
}

default consent_reason := "user consent needed"

consent_reason := sprintf("user consent needed for %s", [consent_resource])

# --- lifetime -----------------------------------------------------------------------------------

# Lifetime caps: the downstream's, and each granted resource's.
_ttl_caps contains downstream.max_ttl_seconds

_ttl_caps contains cap if {
	some uri in granted_resources
	cap := resources[uri].max_ttl_seconds
}

# The smallest cap, found with `<=` rather than min(): regopy's min orders numbers as strings.
_ttl := {"ttl_seconds": cap} if {
	some cap in _ttl_caps
	every other in _ttl_caps {
		cap <= other
	}
} else := {}

# --- identity claims ----------------------------------------------------------------------------

# Claims Sekisho sets itself (tenant, acr, amr, auth_time…) or never lets policy set; listing
# one in propagate_claims is a no-op. Mirrors sekisho.minting.claims.RESERVED_CLAIMS (a name
# missing here makes the minter refuse the grant; tests/unit/policy/test_reserved_claims.py).
reserved_claims := {
	"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", "resource", "act",
	"tenant", "auth_time", "acr", "amr", "cnf", "may_act", "typ", "azp", "aud_tenant", "aud_sub",
	"authorization_details", "status",
}

# A resource's own `propagate_claims` replaces the downstream's for that resource.
_claim_names_for(uri) := names if {
	names := resources[uri].propagate_claims
} else := object.get(downstream, "propagate_claims", [])

_candidate_claims contains name if some name in object.get(downstream, "propagate_claims", [])

_candidate_claims contains name if {
	some uri in granted_resources
	some name in _claim_names_for(uri)
}

# METADATA
# description: >-
#   Names every granted resource asks for: a token for several resources carries only the
#   claims all of them may see.
claim_names contains name if {
	some name in _candidate_claims
	not reserved_claims[name]
	every uri in granted_resources {
		name in _claim_names_for(uri)
	}
}

# METADATA
# description: >-
#   Identity claims copied into the token: `groups` is the verified group list (whatever the
#   IdP's claim is called); any other name is the subject token's claim, when present; `email`
#   only when the IdP did not say it is unverified (`email_verified` false).
propagated_claims := {name: value |
	some name in claim_names
	value := _claim_value(name)
}

_claim_value("groups") := input.subject.groups

_claim_value(name) := input.subject.claims[name] if not name in {"groups", "email"}

_claim_value("email") := input.subject.claims.email if not _email_unverified

# An address the IdP says it has not verified (OIDC Core 5.1; some IdPs send the boolean as a
# string) is not handed to downstreams as the user's: whoever registers it at the IdP would be
# that user to a downstream that keys accounts by email (red team session 19).
_email_unverified if input.subject.claims.email_verified in {false, "false"}
