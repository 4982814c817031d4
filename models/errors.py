"""The one error type of modbench: bad input, a damaged file, an impossible request.

Every layer raises a subclass of ModbenchError for what the user can fix; the command
line turns any of them into one line and exit code 2. It lives in the lowest layer
(models) so exporters and bench can subclass it without importing upward.
"""
from __future__ import annotations


class ModbenchError(ValueError):
    """Something the user can fix: printed as one line, exit code 2."""
