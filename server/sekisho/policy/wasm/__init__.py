"""The embedded engine: Rego compiled to WebAssembly by OPA (`opa build -t wasm`), evaluated in
process through wasmtime (docs/policy-authors.md, "The embedded engine")."""
