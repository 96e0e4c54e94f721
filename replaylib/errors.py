"""The root of replaylib's error hierarchy.

Every error a user can cause with bad input derives from :class:`ReplaylibError`,
so the CLI can turn it into a one-line message and a non-zero exit status
instead of a traceback.  Each module defines its own subclass next to the code
that raises it (``TraceError`` in ``replaylib.trace``, ``ScenarioError`` in
``replaylib.scenario`` ...).
"""


class ReplaylibError(Exception):
    """Bad input or a refused operation; the message says what and where."""
