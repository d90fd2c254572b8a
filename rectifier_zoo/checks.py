"""Argument checks shared by the package, with one message style (Keras's "Received: ...")."""


def check_choice(name: str, value, choices) -> None:
    """Raises ValueError unless `value` is one of `choices`, naming the choices and the value."""
    if value not in choices:
        raise ValueError(
            f"Unknown {name}. Expected one of {tuple(choices)}. Received: {name}={value!r}"
        )
