"""The single error type of the training-data readers."""


class DataError(ValueError):
    """Training data cannot be used; the message is one line naming the input and the problem."""
