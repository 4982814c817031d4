"""What every layer shares and no layer owns: the one error type and its exit codes
(errors.py), and writing files so that a reader never sees half of one (fsio.py).
It imports nothing of modbench, so models, exporters and bench can all build on it."""
