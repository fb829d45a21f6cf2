# Tests of delegation.rego: may_act, registry-listed actors, and the refusal of everyone else.
package sekisho.exchange_test

import rego.v1

import data.sekisho.exchange

delegation_as := "https://delegated-as.test"

delegation_registry := {"downstreams": {
	delegation_as: {
		"scopes": {"d.read": {}},
		"group_grants": {"readers": ["d.read"]},
		"actors": {
			"agent-any-issuer": {},
			"agent-pinned": {"issuer": "https://idp.test"},
			"agent-malformed": true,
		},
	},
	open_as: {"scopes": {"open.read": {}}, "group_grants": {"readers": ["open.read"]}},
}}

actor(sub, iss) := {"sub": sub, "iss": iss, "claims": {}}

# The decision for a reader on `audience` with `actor_doc` as input.actor and `may_act` in the
# subject token's claims (null = absent).
decide_delegation(audience, actor_doc, may_act) := result if {
	doc := object.union(base_input, {
		"subject": {"groups": ["readers"], "claims": _may_act_claims(may_act)},
		"request": {"audience": audience},
		"actor": actor_doc,
	})
	result := exchange.decision with input as doc with data.sekisho.registry as delegation_registry
}

_may_act_claims(may_act) := {} if may_act == null

_may_act_claims(may_act) := {"may_act": may_act} if may_act != null

refused_actor := {"allow": false, "error": "access_denied", "reason": "the actor may not act for this user"}

test_no_actor_token_is_unaffected if {
	result := decide_delegation(open_as, null, null)
	result.allow
	not "actor_approved" in object.keys(result)
}

test_actor_named_by_may_act_is_accepted_without_policy_approval if {
	result := decide_delegation(open_as, actor("agent-7", "https://idp.test"), {"sub": "agent-7"})
	result.allow
	not "actor_approved" in object.keys(result)
}

test_may_act_with_issuer_must_match_the_actor_issuer if {
	may_act := {"sub": "agent-7", "iss": "https://other-idp.test"}
	decide_delegation(open_as, actor("agent-7", "https://idp.test"), may_act) == refused_actor
}

test_may_act_naming_someone_else_refuses_the_actor if {
	decide_delegation(open_as, actor("agent-7", "https://idp.test"), {"sub": "agent-8"}) == refused_actor
}

test_any_trusted_actor_without_may_act_or_registry_entry_is_refused if {
	decide_delegation(open_as, actor("anyone", "https://idp.test"), null) == refused_actor
	decide_delegation(delegation_as, actor("anyone", "https://idp.test"), null) == refused_actor
}

test_registry_listed_actor_is_approved_explicitly if {
	result := decide_delegation(delegation_as, actor("agent-any-issuer", "https://x.test"), null)
	result.allow
	result.actor_approved == true
}

test_registry_entry_with_issuer_binds_the_actor_issuer if {
	decide_delegation(delegation_as, actor("agent-pinned", "https://idp.test"), null).actor_approved
	wrong := decide_delegation(delegation_as, actor("agent-pinned", "https://evil.test"), null)
	wrong == refused_actor
}

test_malformed_registry_entry_approves_nobody if {
	result := decide_delegation(delegation_as, actor("agent-malformed", "https://idp.test"), null)
	result == refused_actor
}

test_actor_listed_for_another_downstream_is_refused_here if {
	decide_delegation(open_as, actor("agent-any-issuer", "https://idp.test"), null) == refused_actor
}
