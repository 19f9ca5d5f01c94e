.PHONY: help demo test bench
help:            ## list the commands
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'
demo:            ## set up, import the synthetic sample, show a journey, serve the API
	scripts/demo
test:            ## set up with dev tools; ruff, mypy --strict, pytest
	scripts/test
bench:           ## import benchmark: figures and ratios against bare orjson / validation
	scripts/bench
