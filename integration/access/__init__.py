"""Who may do what: clients (API keys, OAuth2 bearer tokens), their scopes, and what
each scope permits."""
