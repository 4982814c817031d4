"""Model definitions and the registry: `create_model(name, **options)`.

Every module of this package is a model family that registers its own entries
when imported (helpers such as complexity.py simply register nothing). They are
discovered here, so adding a peer model is adding one file; the registry imports
none of them, and a family that builds on another imports it by name.
"""
import importlib
import pkgutil

from .registry import (ModelEntry, ModelError, PaperFacts, create_model, get_entry,
                       list_entries, suites)


def _import_families() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_") and info.name != "registry":
            importlib.import_module(f"{__name__}.{info.name}")


_import_families()

from .byo import is_spec, parse_model_args, parse_top1, resolve_spec  # noqa: E402

__all__ = ["ModelEntry", "ModelError", "PaperFacts", "create_model", "get_entry", "is_spec",
           "list_entries", "parse_model_args", "parse_top1", "resolve_spec", "suites"]
