# Tests of scopes.rego
# Tenant and caller scope limits, and step-up by risk level, malformed data included.
package sekisho.exchange_test

import rego.v1

import data.sekisho.exchange

risky_as := "https://risky-as.test"

risk_registry := {
	"risk_levels": {
		"fresh": {"rank": 1, "max_age": 600},
		"mfa": {"rank": 2, "acr_values": ["urn:test:mfa", "urn:test:key"], "max_age": 300},
		"key": {"rank": 2, "acr_values": ["urn:test:key"]},
		"bad_age": {"rank": 1, "max_age": "300"},
		"not_an_object": true,
	},
	"downstreams": {risky_as: {
		"scopes": {
			"plain": {},
			"fresh.op": {"risk": "fresh"},
			"mfa.op": {"risk": "mfa"},
			"key.op": {"risk": "key"},
			"bad.op": {"risk": "bad_age"},
			"broken.op": {"risk": "not_an_object"},
			"typo.op": {"risk": "nonexistent"},
		},
		"group_grants": {"staff": ["plain", "fresh.op", "mfa.op", "key.op", "bad.op", "broken.op", "typo.op"]},
		"tenants": {"acme": {"scopes": ["plain", "fresh.op"]}, "globex": {}, "initech": {"scopes": []}},
		"callers": {"limited": {"scopes": ["plain"]}, "none": {"scopes": []}, "free": {}},
	}},
}

ask_risky(scopes, subject) := result if {
	defaults := {"groups": ["staff"], "tenant": "globex", "auth_time": 1699999990}
	result := exchange.decision with input as object.union(base_input, {
		"subject": object.union(defaults, subject),
		"caller": {"id": "free"},
		"request": {"audience": risky_as, "scopes": scopes},
	})
		with data.sekisho.registry as risk_registry
}

test_scope_without_risk_needs_nothing if {
	ask_risky(["plain"], {}).scopes == ["plain"]
}

test_recent_login_meets_a_max_age_only_level if {
	ask_risky(["fresh.op"], {}).scopes == ["fresh.op"]
}

test_old_login_steps_up_with_max_age_only if {
	result := ask_risky(["fresh.op"], {"auth_time": 1699990000})
	result.error == "insufficient_user_authentication"
	result.acr_values == ""
	result.max_age == 600
}

test_acr_in_the_list_and_recent_login_is_granted if {
	ask_risky(["mfa.op"], {"acr": "urn:test:key"}).scopes == ["mfa.op"]
}

test_missing_acr_steps_up_with_acr_values_in_order if {
	result := ask_risky(["mfa.op"], {})
	result.acr_values == "urn:test:mfa urn:test:key"
	result.max_age == 300
	result.reason == "scope risk level mfa needs stronger user authentication"
}

test_level_without_max_age_ignores_auth_time if {
	ask_risky(["key.op"], {"acr": "urn:test:key", "auth_time": 0}).scopes == ["key.op"]
	ask_risky(["key.op"], {}).max_age == 0
}

test_equal_ranks_pick_the_last_name if {
	ask_risky(["mfa.op", "key.op"], {}).acr_values == "urn:test:mfa urn:test:key"
}

test_max_age_that_is_not_a_number_is_never_met if {
	result := ask_risky(["bad.op"], {})
	result.error == "insufficient_user_authentication"
	result.max_age == 0
}

test_risk_level_that_is_not_an_object_makes_the_scope_ungrantable if {
	ask_risky(["broken.op"], {"acr": "urn:test:key"}).error == "invalid_scope"
}

test_undefined_risk_level_makes_the_scope_ungrantable if {
	ask_risky(["typo.op"], {"acr": "urn:test:key"}).error == "invalid_scope"
}

test_tenant_scope_limit if {
	ask_risky(["plain", "mfa.op"], {"tenant": "acme", "acr": "urn:test:key"}).scopes == ["plain"]
	ask_risky(["plain"], {"tenant": "initech"}).error == "access_denied"
}

test_caller_scope_limit if {
	limited := exchange.decision with input as object.union(base_input, {
		"subject": {"groups": ["staff"], "tenant": "globex"},
		"caller": {"id": "limited"},
		"request": {"audience": risky_as, "scopes": ["plain", "fresh.op"]},
	})
		with data.sekisho.registry as risk_registry
	limited.scopes == ["plain"]
	nothing := exchange.decision with input as object.union(base_input, {
		"subject": {"groups": ["staff"], "tenant": "globex"},
		"caller": {"id": "none"},
		"request": {"audience": risky_as},
	})
		with data.sekisho.registry as risk_registry
	nothing.error == "access_denied"
}
