"""One module per route group; `integration.api.app` includes them."""
