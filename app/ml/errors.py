"""Errors the ML core raises; each names the spec field it is about."""


class SpecError(ValueError):
    """A spec that cannot train on its dataset. ``field`` is a path like model.layers[3]."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DataError(ValueError):
    """A dataset that cannot be read or trained on."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
