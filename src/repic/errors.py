"""The one exception type users see.

Everything that is the user's to fix (a missing image, a malformed database, an unknown task) raises
``RepicError`` with a message that says what is wrong and how to fix it. The CLI prints the message
without a traceback; library users can catch it as a ``ValueError``.
"""


class RepicError(ValueError):
    """A problem with the user's input, configuration or files, explained in the message."""
