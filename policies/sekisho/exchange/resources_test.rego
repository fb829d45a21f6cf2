# Tests of resources.rego
# Resource forms, consent, lifetime caps and claim propagation.
package sekisho.exchange_test

import rego.v1

import data.sekisho.exchange

gated_as := "https://gated-as.test"

gated_mcp := "https://gated.test/mcp"

gated_api := "https://gated.test/api"

gated_files := "https://gated.test/files"

resource_registry := {"downstreams": {
	gated_as: {
		"resources": {
			gated_mcp: {"consent": {"authorization_url": "https://consent.test/mcp"}, "max_ttl_seconds": 90, "propagate_claims": ["email", "name", "groups", "tenant", "sub"]},
			gated_api: {"max_ttl_seconds": 1000, "propagate_claims": ["email", "groups"]},
			gated_files: {"consent": {"authorization_url": 42}},
		},
		"scopes": {"gated.read": {}},
		"group_grants": {"staff": ["gated.read"]},
		"propagate_claims": ["email"],
		"max_ttl_seconds": 300,
	},
	"https://listed-as.test": {
		"resources": ["https://listed.test/a", "https://listed.test/b"],
		"require_resource": true,
		"scopes": {"listed.read": {}},
		"group_grants": {"staff": ["listed.read"]},
	},
}}

ask_gated(audience, resources, consents) := result if {
	claims := {"email": "alice@example.com", "name": "Alice", "groups": "raw-groups", "sub": "alice"}
	result := exchange.decision with input as object.union(base_input, {
		"subject": {"groups": ["staff"], "tenant": "acme", "claims": claims},
		"request": {"audience": audience, "resources": resources},
	})
		with data.sekisho.registry as resource_registry
		with data.sekisho.consents as consents
}

consented(records) := {"https://idp.test": {"alice": records}}

test_array_form_resources_work_like_objects_without_settings if {
	ask_gated("https://listed-as.test", ["https://listed.test/b"], {}).resources == ["https://listed.test/b"]
}

test_required_resource_missing_is_invalid_target if {
	ask_gated("https://listed-as.test", [], {}).error == "invalid_target"
}

test_consent_required_names_the_url if {
	result := ask_gated(gated_as, [gated_mcp], {})
	result.error == "consent_required"
	result.authorization_url == "https://consent.test/mcp"
}

test_consent_url_that_is_not_a_string_still_requires_consent if {
	result := ask_gated(gated_as, [gated_files], {})
	result.error == "consent_required"
	result.authorization_url == ""
}

test_malformed_consent_records_are_not_consent if {
	ask_gated(gated_as, [gated_mcp], consented({gated_mcp: true})).error == "consent_required"
	ask_gated(gated_as, [gated_mcp], consented({gated_mcp: {"expires_at": "never"}})).error == "consent_required"
}

test_given_consent_grants if {
	ask_gated(gated_as, [gated_mcp], consented({gated_mcp: {}})).allow
}

test_smallest_cap_wins_compared_as_numbers if {
	# 90 < 300 < 1000, although "1000" < "300" < "90" as strings.
	ask_gated(gated_as, [gated_mcp, gated_api], consented({gated_mcp: {}})).ttl_seconds == 90
	ask_gated(gated_as, [gated_api], {}).ttl_seconds == 300
}

test_resource_claims_replace_the_downstreams_and_skip_reserved_names if {
	result := ask_gated(gated_as, [gated_mcp], consented({gated_mcp: {}}))
	result.claims == {"email": "alice@example.com", "name": "Alice", "groups": ["staff"]}
}

test_claims_for_several_resources_are_those_all_of_them_take if {
	result := ask_gated(gated_as, [gated_mcp, gated_api], consented({gated_mcp: {}}))
	result.claims == {"email": "alice@example.com", "groups": ["staff"]}
}

test_reserved_claims_mirror_sekishos_list if {
	count(exchange.reserved_claims) == 23
	"tenant" in exchange.reserved_claims
	"status" in exchange.reserved_claims
}

claims_for(claims) := result if {
	result := exchange.decision.claims with input as object.union(base_input, {
		"subject": {"groups": ["staff"], "tenant": "acme", "claims": claims},
		"request": {"audience": gated_as, "resources": [gated_mcp]},
	})
		with data.sekisho.registry as resource_registry
		with data.sekisho.consents as consented({gated_mcp: {}})
}

test_an_unverified_email_is_not_propagated if {
	claims_for({"email": "alice@example.com", "email_verified": false, "name": "Alice"}) == {
		"name": "Alice",
		"groups": ["staff"],
	}
}

test_an_unverified_email_sent_as_a_string_is_not_propagated if {
	not claims_for({"email": "alice@example.com", "email_verified": "false"}).email
}

test_a_verified_or_unmarked_email_is_propagated if {
	claims_for({"email": "a@example.com", "email_verified": true}).email == "a@example.com"
	claims_for({"email": "a@example.com", "email_verified": "true"}).email == "a@example.com"
	claims_for({"email": "a@example.com"}).email == "a@example.com"
}
