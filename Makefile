.PHONY: help demo test test-fast bench bench-pull bench-push bench-bulk bench-scale bench-push-under-import
help:            ## list the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
demo:            ## set up, import the synthetic sample, show a journey, serve the API
	scripts/demo
test:            ## set up with dev tools; ruff, mypy --strict, pytest
	scripts/test
test-fast:       ## the fast tier while you work: ruff and the pure tests, about 10 s
	scripts/test-fast
bench:           ## import benchmark: figures and ratios against bare orjson / validation
	scripts/bench
bench-pull:      ## pull benchmark: journey sync vs a sequential next-link loop on sekmet-fhir
	scripts/bench-pull
bench-push:      ## push benchmark: transaction Bundles into /fhir vs a bare FastAPI+orjson endpoint
	scripts/bench-push
bench-bulk:      ## bulk import benchmark: 500k-resource export vs bare orjson and validation
	scripts/bench-bulk
bench-scale:     ## scale benchmark: SQLite vs PostgreSQL imports, journey reads at 1k/10k/100k people
	scripts/bench-scale
bench-push-under-import: ## push p99 while a bulk import runs into the same store (SQLite, PostgreSQL)
	scripts/bench-push-under-import
