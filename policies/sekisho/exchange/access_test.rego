# Tests of access.rego
# The deny-list, tenant isolation and caller restrictions, malformed data included.
package sekisho.exchange_test

import rego.v1

import data.sekisho.exchange

access_registry := {
	"tenants": {
		"initech": {"issuers": ["https://initech-idp.test"]},
		"odd": {"issuers": "https://odd-idp.test"},
	},
	"downstreams": {
		open_as: {"scopes": {"open.read": {}}, "group_grants": {"readers": ["open.read"]}},
		"https://saas-as.test": {
			"scopes": {"saas.read": {}},
			"group_grants": {"readers": ["saas.read"]},
			"tenants": {"acme": {}, "globex": false},
		},
		guarded_as: {
			"scopes": {"guarded.read": {}},
			"group_grants": {"readers": ["guarded.read"]},
			"callers": {
				"agent-a": {"client_id": "by-id"},
				"spiffe://test/agent-a": {"client_id": "by-spiffe"},
				"spiffe://test/agent-s": {"client_id": 7},
			},
		},
	},
}

# The decision with `patch` merged into base_input, this file's registry and `denylist`.
decide_access(patch, denylist) := result if {
	result := exchange.decision with input as object.union(base_input, patch)
		with data.sekisho.registry as access_registry
		with data.sekisho.denylist as denylist
}

reader_on(audience) := {"subject": {"groups": ["readers"]}, "request": {"audience": audience}}

emergency := {"allow": false, "error": "access_denied", "reason": "emergency deny-list"}

untrusted := {
	"allow": false,
	"error": "access_denied",
	"reason": "tenant asserted by an issuer the tenant does not trust",
}

test_empty_denylist_blocks_nobody if {
	decide_access(reader_on(open_as), {}).allow
}

test_denylisted_user_without_issuer_is_blocked_everywhere if {
	decide_access(reader_on(open_as), {"users": {"alice": {"issuer": ""}}}) == emergency
}

test_malformed_denylist_entry_still_blocks if {
	decide_access(reader_on(open_as), {"users": {"alice": true}}) == emergency
	decide_access(reader_on(open_as), {"users": {"alice": {"issuer": 5}}}) == emergency
}

test_denylist_entry_for_another_issuer_does_not_block if {
	decide_access(reader_on(open_as), {"users": {"alice": {"issuer": "https://other.test"}}}).allow
}

test_denylisted_caller_by_spiffe_id if {
	patch := object.union(reader_on(open_as), {"caller": {"spiffe_id": "spiffe://test/bad"}})
	decide_access(patch, {"callers": {"spiffe://test/bad": {}}}) == emergency
}

test_denylist_is_checked_before_the_audience if {
	decide_access(reader_on("https://unknown.test"), {"users": {"alice": {}}}) == emergency
}

test_registered_tenant_from_its_issuer_is_trusted if {
	patch := object.union(reader_on(open_as), {"subject": {"tenant": "initech", "iss": "https://initech-idp.test"}})
	decide_access(patch, {}).allow
}

test_registered_tenant_from_another_issuer_is_refused if {
	patch := object.union(reader_on(open_as), {"subject": {"tenant": "initech"}})
	decide_access(patch, {}) == untrusted
}

test_malformed_tenant_issuers_fail_closed if {
	patch := object.union(reader_on(open_as), {"subject": {"tenant": "odd", "iss": "https://odd-idp.test"}})
	decide_access(patch, {}) == untrusted
}

test_multi_tenant_downstream_serves_listed_tenants_only if {
	decide_access(object.union(reader_on("https://saas-as.test"), {"subject": {"tenant": "acme"}}), {}).allow
	not decide_access(object.union(reader_on("https://saas-as.test"), {"subject": {"tenant": "globex"}}), {}).allow
	not decide_access(object.union(reader_on("https://saas-as.test"), {"subject": {"tenant": "umbrella"}}), {}).allow
	not decide_access(reader_on("https://saas-as.test"), {}).allow
}

caller_patch(caller) := object.union(reader_on(guarded_as), {"caller": caller})

test_caller_id_entry_wins_over_spiffe_entry if {
	result := decide_access(caller_patch({"id": "agent-a", "spiffe_id": "spiffe://test/agent-a"}), {})
	result.client_id == "by-id"
}

test_caller_known_by_spiffe_id_only if {
	result := decide_access(caller_patch({"id": "unlisted", "spiffe_id": "spiffe://test/agent-a"}), {})
	result.allow
	result.client_id == "by-spiffe"
}

test_non_string_client_id_is_left_empty if {
	result := decide_access(caller_patch({"spiffe_id": "spiffe://test/agent-s"}), {})
	result.allow
	result.client_id == ""
}

# Red team session 14: the deny-list read only input.subject.sub and input.caller, so a user or
# agent on it kept acting through an actor token (another user's may_act naming them) or nested
# in a subject token's `act` (a token that was itself a delegation), as `sekisho revoke` had
# before session 10-11. Each actor is named as a user (sub, and its issuer: the level's `iss`,
# else its token's) and as a caller (sub), as the revocation gate names them.
mallory_acts := object.union(reader_on(open_as), {
	"subject": {"claims": {"may_act": {"sub": "mallory"}}},
	"actor": {"sub": "mallory", "iss": "https://idp.test", "claims": {}},
})

test_a_denylisted_user_as_the_actor_is_blocked if {
	decide_access(mallory_acts, {}).allow
	decide_access(mallory_acts, {"users": {"mallory": {}}}) == emergency
	decide_access(mallory_acts, {"users": {"mallory": {"issuer": "https://idp.test"}}}) == emergency
	decide_access(mallory_acts, {"users": {"mallory": {"issuer": "https://other.test"}}}).allow
}

test_a_denylisted_workload_as_the_actor_is_blocked if {
	decide_access(mallory_acts, {"callers": {"mallory": {}}}) == emergency
}

nested_act(act) := object.union(reader_on(open_as), {"subject": {"claims": {"act": act}}})

test_a_denylisted_agent_nested_in_act_is_blocked if {
	chain := {"sub": "agent-1", "act": {"sub": "agent-x", "iss": "https://wl.test"}}
	decide_access(nested_act(chain), {}).allow
	decide_access(nested_act(chain), {"callers": {"agent-x": {}}}) == emergency
	decide_access(nested_act(chain), {"users": {"agent-x": {"issuer": "https://wl.test"}}}) == emergency
	decide_access(nested_act(chain), {"users": {"agent-x": {"issuer": "https://idp.test"}}}).allow
	decide_access(nested_act({"sub": "agent-x"}), {"users": {"agent-x": {"issuer": "https://idp.test"}}}) == emergency
	decide_access(nested_act({"sub": "agent-x", "iss": ""}), {"users": {"agent-x": {"issuer": "https://idp.test"}}}) == emergency
}

test_an_actor_tokens_own_act_chain_is_read_too if {
	patch := object.union(mallory_acts, {"actor": {"claims": {"act": {"sub": "agent-x"}}}})
	decide_access(patch, {"callers": {"agent-x": {}}}) == emergency
}

test_a_malformed_act_chain_is_read_without_error if {
	decide_access(nested_act("agent-x"), {"callers": {"agent-x": {}}}).allow
	decide_access(nested_act({"sub": 7}), {"callers": {"agent-x": {}}}).allow
}
