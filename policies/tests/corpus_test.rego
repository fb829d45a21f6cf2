# METADATA
# title: The shared decision corpus under OPA
# description: >-
#   Runs every case of policies/tests/cases/*.json (loaded as data.cases when policies/tests is
#   an OPA root) through data.sekisho.exchange.decision and checks each input against
#   policies/schemas/input.json (loaded as data.schemas.input). The same cases run through the
#   embedded engine and a live OPA server in tests/unit/policy/test_corpus.py.
#   Run: bin/opa test policies/sekisho policies/data policies/tests \
#   schemas.input:policies/schemas/input.json (what `make test` and `sekisho policy test` do).
package corpus_test

import rego.v1

import data.sekisho.exchange

# A case's `data` is merged into the shipped documents the way object.union merges in OPA:
# objects merge key by key, anything else replaces.
default _registry := {}

_registry := data.sekisho.registry

default _denylist := {}

_denylist := data.sekisho.denylist

default _consents := {}

_consents := data.sekisho.consents

_patch(case, name) := object.get(case, ["data", "sekisho", name], {})

decision_of(case) := result if {
	result := exchange.decision with input as case.input
		with data.sekisho.registry as object.union(_registry, _patch(case, "registry"))
		with data.sekisho.denylist as object.union(_denylist, _patch(case, "denylist"))
		with data.sekisho.consents as object.union(_consents, _patch(case, "consents"))
}

matching contains name if {
	some name, case in data.cases
	decision_of(case) == case.expected
}

test_every_case_gets_its_expected_decision if {
	count(data.cases) >= 40
	mismatched := object.keys(data.cases) - matching
	print("cases whose decision differs from expected:", mismatched)
	count(mismatched) == 0
}

_schema_valid(document) if {
	[valid, _] := json.match_schema(document, data.schemas.input)
	valid
}

test_every_case_input_matches_the_input_schema if {
	count(data.cases) >= 40
	invalid := {name | some name, case in data.cases; not _schema_valid(case.input)}
	print("cases whose input does not match policies/schemas/input.json:", invalid)
	count(invalid) == 0
}

# Guards the check above: the schema is loaded and does reject ill-typed documents.
test_input_schema_rejects_ill_typed_inputs if {
	some case in data.cases
	_schema_valid(case.input)
	not _schema_valid(object.union(case.input, {"now": "soon"}))
	not _schema_valid(object.union(case.input, {"subject": {"groups": "sales"}}))
	not _schema_valid(object.union(case.input, {"caller": {"authenticated_by": "password"}}))
	not _schema_valid(object.union(case.input, {"request": {"scope": ["a"]}}))
	not _schema_valid(object.remove(case.input, {"now"}))
}
