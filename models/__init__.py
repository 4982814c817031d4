"""Model definitions and the registry: `create_model(name, **options)`."""
from .registry import (ModelEntry, ModelError, PaperFacts, create_model, get_entry,
                       list_entries, suites)

__all__ = ["ModelEntry", "ModelError", "PaperFacts", "create_model", "get_entry",
           "list_entries", "suites"]
