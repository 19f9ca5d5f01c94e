"""Webhooks: the journey feed delivered to subscribed endpoints, signed per the
Standard Webhooks specification."""
