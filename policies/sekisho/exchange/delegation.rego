# Who may act for the user
#
# RFC 8693 section 4.4. An actor token (input.actor) is accepted only when the subject token's
# may_act names it, or the downstream's registry entry lists it under `actors`. Sekisho enforces
# the same rule: an actor the subject's may_act does not name needs `actor_approved: true` in
# the decision, which only a registry-listed actor gets here. Uses only access.rego
# (downstream), so modules never refer to each other in a cycle.
package sekisho.exchange

import rego.v1

# The actor token's subject and issuer; false without an actor token (false rather than
# undefined so that it is computed once: every use below fails on it, as on undefined).
default _actor := false

_actor := input.actor if is_object(input.actor)

# METADATA
# description: The subject token's may_act names the actor (sub, and iss when may_act has one).
actor_named_by_may_act if {
	may_act := input.subject.claims.may_act
	may_act.sub == _actor.sub
	object.get(may_act, "iss", _actor.iss) == _actor.iss
}

# METADATA
# description: >-
#   The downstream lists the actor: `actors` maps an actor's `sub` to {} (any trusted issuer)
#   or {"issuer": "..."} (only that one). Matching is exact.
actor_registered if {
	entry := object.get(downstream, "actors", {})[_actor.sub]
	is_object(entry)
	object.get(entry, "issuer", _actor.iss) == _actor.iss
}

# METADATA
# description: An actor token is present and neither may_act nor the registry allows it.
actor_refused if {
	_actor
	not actor_named_by_may_act
	not actor_registered
}

# Added to a grant: the explicit approval Sekisho needs for an actor may_act does not name.
delegation := {"actor_approved": true} if actor_registered

else := {}
