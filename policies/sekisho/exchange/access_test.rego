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
