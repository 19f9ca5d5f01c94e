"""What the three packages share: the project's error root, nothing else.

`connectors`, `mappings` and `integration` may all import this package; it
imports none of them, so the one-way rule between them still holds.
"""
