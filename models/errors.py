"""Errors a user can fix (unknown variant, missing weights, unreadable image)."""


class ModelError(Exception):
    """One-line, actionable problem with a model name, a checkpoint or an input image."""
