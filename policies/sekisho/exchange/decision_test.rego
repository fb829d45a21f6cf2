# METADATA
# title: Tests of the default exchange policy
# description: >-
#   Every behaviour of decision.rego against a test registry defined here, so the tests do not
#   move when an operator edits policies/data/registry.json (one smoke test reads the shipped one).
package sekisho.exchange_test

import rego.v1

import data.sekisho.exchange

# --- fixtures -----------------------------------------------------------------------------------

open_as := "https://open-as.test"

open_mcp := "https://open.test/mcp"

open_search := "https://open.test/search"

tenant_as := "https://tenant-as.test"

tenant_mcp := "https://tenant.test/mcp"

blank_tenant_as := "https://blank-tenant-as.test"

guarded_as := "https://guarded-as.test"

bare_as := "https://bare-as.test"

strict_defaults_as := "https://strict-defaults-as.test"

registry := {"downstreams": {
	# Everything optional is set.
	open_as: {
		"name": "open downstream",
		"resources": [open_mcp, open_search],
		"scopes": {
			"open.read": {"description": "read"},
			"open.write": {"description": "write"},
			"open.admin": {"description": "administer"},
		},
		"default_scopes": ["open.read"],
		"group_grants": {
			"readers": ["open.read"],
			"writers": ["open.read", "open.write"],
			"admins": ["open.admin"],
			# Not in the catalogue: a typo in a grant must never become a grant.
			"ghosts": ["open.ghost"],
		},
		"callers": {},
		"propagate_claims": ["email", "name", "department"],
		"max_ttl_seconds": 120,
	},
	tenant_as: {
		"tenant": "acme",
		"resources": [tenant_mcp],
		"scopes": {"tenant.read": {}},
		"group_grants": {"staff": ["tenant.read"]},
	},
	blank_tenant_as: {
		"tenant": "",
		"scopes": {"blank.read": {}},
		"group_grants": {"staff": ["blank.read"]},
	},
	guarded_as: {
		"scopes": {"guarded.read": {}},
		"group_grants": {"staff": ["guarded.read"]},
		"callers": {
			"agent-a": {"client_id": "client-a-at-guarded"},
			"agent-b": {},
		},
	},
	# Nothing optional is set: no resources, defaults, callers, claims or ttl.
	bare_as: {
		"scopes": {"bare.read": {}, "bare.write": {}},
		"group_grants": {"staff": ["bare.read", "bare.write"]},
	},
	strict_defaults_as: {
		"scopes": {"strict.read": {}, "strict.admin": {}},
		"default_scopes": ["strict.admin"],
		"group_grants": {"staff": ["strict.read"], "admins": ["strict.read", "strict.admin"]},
	},
}}

base_input := {
	"subject": {
		"iss": "https://idp.test",
		"sub": "alice",
		"client_id": "agent-app",
		"tenant": "",
		"email": "alice@example.com",
		"groups": [],
		"acr": "",
		"amr": [],
		"auth_time": 0,
		"claims": {},
	},
	"actor": null,
	"caller": {"id": "", "spiffe_id": "", "authenticated_by": "none"},
	"request": {
		"audience": "",
		"resources": [],
		"scopes": [],
		"requested_token_type": "",
		"subject_token_type": "",
		"lifetime_seconds": 0,
		"context": {},
	},
	"now": 1700000000,
}

# The decision for base_input with `patch` merged in (objects merge, arrays are replaced).
decide(patch) := result if {
	doc := object.union(base_input, patch)
	result := exchange.decision with input as doc with data.sekisho.registry as registry
}

# A request for `audience` by a user in `groups` asking for `scopes`.
ask(audience, groups, scopes) := decide({
	"subject": {"groups": groups},
	"request": {"audience": audience, "scopes": scopes},
})

no_grant := {"allow": false, "error": "access_denied", "reason": "no grant for this audience"}

# --- audience and grants ------------------------------------------------------------------------

test_unknown_audience_is_access_denied if {
	ask("https://unknown-as.test", ["writers"], ["open.read"]) == no_grant
}

test_unknown_audience_same_answer_as_no_grant if {
	unknown := ask("https://unknown-as.test", ["writers"], [])
	known := ask(open_as, ["nobody"], [])
	unknown == known
}

test_user_without_groups_is_access_denied if {
	ask(open_as, [], ["open.read"]) == no_grant
}

test_empty_input_and_registry_is_no_grant if {
	exchange.decision == no_grant with data.sekisho.registry as {} with input as {}
}

# --- tenant binding -----------------------------------------------------------------------------

test_tenant_bound_downstream_grants_its_tenant if {
	result := decide({
		"subject": {"tenant": "acme", "groups": ["staff"]},
		"request": {"audience": tenant_as},
	})
	result.allow
	result.scopes == ["tenant.read"]
}

test_tenant_bound_downstream_denies_other_tenant if {
	decide({
		"subject": {"tenant": "globex", "groups": ["staff"]},
		"request": {"audience": tenant_as},
	}) == no_grant
}

test_tenant_bound_downstream_denies_empty_tenant if {
	decide({
		"subject": {"tenant": "", "groups": ["staff"]},
		"request": {"audience": tenant_as},
	}) == no_grant
}

test_tenant_match_is_case_sensitive if {
	decide({
		"subject": {"tenant": "ACME", "groups": ["staff"]},
		"request": {"audience": tenant_as},
	}) == no_grant
}

test_downstream_without_tenant_serves_any_tenant if {
	decide({
		"subject": {"tenant": "globex", "groups": ["readers"]},
		"request": {"audience": open_as},
	}).allow
}

test_downstream_with_blank_tenant_serves_any_tenant if {
	decide({
		"subject": {"tenant": "globex", "groups": ["staff"]},
		"request": {"audience": blank_tenant_as},
	}).allow
}

# --- callers ------------------------------------------------------------------------------------

guarded_by(caller_id) := decide({
	"subject": {"groups": ["staff"]},
	"caller": {"id": caller_id, "authenticated_by": "mtls"},
	"request": {"audience": guarded_as},
})

test_callers_list_denies_unlisted_caller if {
	guarded_by("agent-z") == no_grant
}

test_callers_list_denies_anonymous_caller if {
	guarded_by("") == no_grant
}

test_callers_list_admits_listed_caller if {
	result := guarded_by("agent-a")
	result.allow
	result.scopes == ["guarded.read"]
}

test_empty_callers_map_admits_any_caller if {
	decide({
		"subject": {"groups": ["readers"]},
		"caller": {"id": "agent-z"},
		"request": {"audience": open_as},
	}).allow
}

test_client_id_comes_from_callers_map if {
	guarded_by("agent-a").client_id == "client-a-at-guarded"
}

test_client_id_empty_when_caller_entry_has_none if {
	result := guarded_by("agent-b")
	result.allow
	result.client_id == ""
}

test_client_id_empty_without_callers if {
	ask(open_as, ["readers"], []).client_id == ""
}

# --- scopes -------------------------------------------------------------------------------------

test_group_grants_union_across_groups if {
	result := ask(open_as, ["readers", "admins"], ["open.read", "open.admin", "open.write"])
	result.allow
	result.scopes == ["open.admin", "open.read"]
}

test_unknown_group_adds_nothing if {
	ask(open_as, ["readers", "strangers"], ["open.read", "open.write"]).scopes == ["open.read"]
}

test_grant_outside_catalogue_is_ignored if {
	result := ask(open_as, ["writers", "ghosts"], ["open.ghost", "open.write"])
	result.allow
	result.scopes == ["open.write"]
}

test_only_uncatalogued_grants_is_access_denied if {
	ask(open_as, ["ghosts"], ["open.ghost"]) == no_grant
}

test_requested_scopes_intersect_grantable if {
	ask(open_as, ["writers"], ["open.write"]).scopes == ["open.write"]
}

test_partial_grant_drops_ungrantable_scopes if {
	result := ask(open_as, ["readers"], ["open.read", "open.write", "open.admin"])
	result.allow
	result.scopes == ["open.read"]
}

test_duplicate_requested_scopes_granted_once if {
	ask(open_as, ["readers"], ["open.read", "open.read"]).scopes == ["open.read"]
}

test_nothing_grantable_requested_is_invalid_scope if {
	result := ask(open_as, ["readers"], ["open.write", "open.admin"])
	result.allow == false
	result.error == "invalid_scope"
}

test_uncatalogued_scope_requested_is_invalid_scope if {
	ask(open_as, ["readers"], ["open.ghost"]).error == "invalid_scope"
}

test_empty_request_gets_default_scopes if {
	ask(open_as, ["writers"], []).scopes == ["open.read"]
}

test_empty_request_without_defaults_gets_all_grantable if {
	ask(bare_as, ["staff"], []).scopes == ["bare.read", "bare.write"]
}

test_empty_request_gets_only_grantable_defaults if {
	ask(strict_defaults_as, ["admins"], []).scopes == ["strict.admin"]
}

# Defaults are not widened to other grantable scopes: a user who holds none of the defaults
# must ask for scopes explicitly.
test_empty_request_without_grantable_defaults_is_invalid_scope if {
	ask(strict_defaults_as, ["staff"], []).error == "invalid_scope"
	ask(strict_defaults_as, ["staff"], ["strict.read"]).scopes == ["strict.read"]
}

# --- resources ----------------------------------------------------------------------------------

ask_resources(audience, resources) := decide({
	"subject": {"groups": ["readers", "staff"]},
	"request": {"audience": audience, "resources": resources},
})

test_unregistered_resource_is_invalid_target if {
	result := ask_resources(open_as, ["https://evil.test/mcp"])
	result.allow == false
	result.error == "invalid_target"
}

test_one_unregistered_resource_among_registered_is_invalid_target if {
	ask_resources(open_as, [open_mcp, "https://evil.test/mcp"]).error == "invalid_target"
}

test_resource_of_another_downstream_is_invalid_target if {
	ask_resources(open_as, [tenant_mcp]).error == "invalid_target"
}

test_resource_on_downstream_without_resources_is_invalid_target if {
	ask_resources(bare_as, [open_mcp]).error == "invalid_target"
}

test_requested_resources_are_granted_as_requested if {
	result := ask_resources(open_as, [open_search])
	result.allow
	result.resources == [open_search]
}

test_no_resources_requested_grants_all_registered if {
	ask_resources(open_as, []).resources == [open_mcp, open_search]
}

test_no_resources_registered_or_requested_grants_none if {
	result := ask_resources(bare_as, [])
	result.allow
	result.resources == []
}

# --- precedence: no grant hides whether the audience or resource exists ------------------------

test_no_grant_wins_over_invalid_target if {
	ask_resources("https://unknown-as.test", ["https://evil.test/mcp"]) == no_grant
	decide({
		"subject": {"tenant": "globex", "groups": ["staff"]},
		"request": {"audience": tenant_as, "resources": ["https://evil.test/mcp"]},
	}) == no_grant
}

test_invalid_target_wins_over_invalid_scope if {
	decide({
		"subject": {"groups": ["readers"]},
		"request": {
			"audience": open_as,
			"scopes": ["open.admin"],
			"resources": ["https://evil.test/mcp"],
		},
	}).error == "invalid_target"
}

# --- claims and ttl -----------------------------------------------------------------------------

test_propagate_claims_copies_only_present_claims if {
	result := decide({
		"subject": {
			"groups": ["readers"],
			"claims": {"email": "alice@example.com", "phone": "+81 3 0000 0000"},
		},
		"request": {"audience": open_as},
	})
	result.claims == {"email": "alice@example.com"}
}

test_propagate_claims_copies_every_listed_claim if {
	claims := {"email": "a@example.com", "name": "Alice", "department": "sales", "salary": 1}
	result := decide({
		"subject": {"groups": ["readers"], "claims": claims},
		"request": {"audience": open_as},
	})
	result.claims == {"email": "a@example.com", "name": "Alice", "department": "sales"}
}

test_no_propagate_claims_copies_nothing if {
	result := decide({
		"subject": {"groups": ["staff"], "claims": {"email": "a@example.com"}},
		"request": {"audience": bare_as},
	})
	result.allow
	result.claims == {}
}

test_ttl_from_registry if {
	ask(open_as, ["readers"], []).ttl_seconds == 120
}

test_ttl_absent_leaves_ttl_out if {
	result := ask(bare_as, ["staff"], [])
	result.allow
	not "ttl_seconds" in object.keys(result)
}

# --- the whole decision -------------------------------------------------------------------------

test_grant_has_contract_shape if {
	result := decide({
		"subject": {"groups": ["writers"], "claims": {"email": "alice@example.com"}},
		"caller": {"id": "agent-a", "authenticated_by": "mtls"},
		"request": {"audience": open_as, "scopes": ["open.write"], "resources": [open_mcp]},
	})
	result == {
		"allow": true,
		"scopes": ["open.write"],
		"resources": [open_mcp],
		"client_id": "",
		"claims": {"email": "alice@example.com"},
		"reason": "granted by group membership",
		"ttl_seconds": 120,
	}
}

test_denials_have_contract_shape if {
	denials := [
		ask("https://unknown-as.test", ["readers"], []),
		ask(open_as, ["readers"], ["open.admin"]),
		ask_resources(open_as, ["https://evil.test/mcp"]),
	]
	every denial in denials {
		object.keys(denial) == {"allow", "error", "reason"}
		denial.allow == false
		is_string(denial.reason)
	}
}

# The one test that reads the shipped policies/data/registry.json.
test_shipped_registry_grants_sales_crm_read if {
	result := exchange.decision with input as object.union(base_input, {
		"subject": {"groups": ["sales"], "claims": {"email": "alice@example.com"}},
		"request": {"audience": "https://crm-as.example.com"},
	})
	result.allow
	result.scopes == ["crm.read"]
	result.resources == ["https://crm.example.com/mcp"]
	result.claims == {"email": "alice@example.com"}
	result.ttl_seconds == 300
}

# The shipped data keeps denylist.json and consents.json, even empty: when a document under
# data.sekisho that the policy reads is absent, rego-cpp resolves the reference by evaluating
# everything under data.sekisho (this package included), ~40 times slower per decision.
test_shipped_data_defines_every_document_the_policy_reads if {
	is_object(data.sekisho.registry.downstreams)
	is_object(data.sekisho.denylist.users)
	is_object(data.sekisho.denylist.callers)
	is_object(data.sekisho.consents)
}

# --- decision cache -----------------------------------------------------------------------------

cached_registry := object.union(registry, {
	"decision_cache_seconds": 60,
	"risk_levels": {"recent": {"rank": 1, "max_age": 600}, "mfa": {"rank": 2, "acr_values": ["mfa"]}},
	"downstreams": {bare_as: {"scopes": {"bare.read": {"risk": "mfa"}, "bare.write": {"risk": "recent"}}}},
})

ask_cached(audience, groups, scopes) := result if {
	doc := object.union(base_input, {
		"subject": {"groups": groups, "acr": "mfa", "auth_time": 1699999900},
		"request": {"audience": audience, "scopes": scopes},
	})
	result := exchange.decision with input as doc with data.sekisho.registry as cached_registry
}

test_grant_carries_the_registry_decision_cache_seconds if {
	ask_cached(open_as, ["readers"], []).cache_ttl_seconds == 60
}

test_grant_under_a_risk_level_without_max_age_is_cached if {
	ask_cached(bare_as, ["staff"], ["bare.read"]).cache_ttl_seconds == 60
}

test_grant_under_a_risk_level_with_max_age_is_not_cached if {
	result := ask_cached(bare_as, ["staff"], ["bare.read", "bare.write"])
	result.allow
	not result.cache_ttl_seconds
}

test_grant_of_a_consent_gated_resource_is_not_cached if {
	gated := object.union(cached_registry, {"downstreams": {open_as: {"resources": {open_mcp: {"consent": {}}}}}})
	result := exchange.decision with input as object.union(base_input, {
		"subject": {"groups": ["readers"]},
		"request": {"audience": open_as},
	})
		with data.sekisho.registry as gated
		with data.sekisho.consents as {"https://idp.test": {"alice": {open_mcp: {}}}}
	result.allow
	not result.cache_ttl_seconds
}

test_denials_are_not_cached if {
	result := ask_cached(open_as, ["nobody"], [])
	not result.allow
	not result.cache_ttl_seconds
}

test_no_decision_cache_seconds_means_no_caching if {
	result := ask(open_as, ["readers"], [])
	result.allow
	not result.cache_ttl_seconds
}
