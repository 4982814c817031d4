def is_spec(s): return False
def parse_model_args(a): return {}
def parse_top1(a): return {}
def resolve_spec(*a, **k): raise NotImplementedError
