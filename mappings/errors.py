"""Errors raised by the mapping engine.

    MappingError
     └── RulePackError      a rule pack file is missing, malformed or inconsistent

Resources that no rule places are not errors: they become `unclassified`
job records that say why.
"""


class MappingError(Exception):
    """Root of every error the mapping engine raises."""


class RulePackError(MappingError):
    """A rule pack cannot be loaded; says which file and which key."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        super().__init__(f"{file}: {key}: {reason}")
        self.file = file
        self.key = key
        self.reason = reason
