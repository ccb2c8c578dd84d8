"""One default per knob: the libraries' keyword defaults are the configs'.

A parameter of a function or method in a library package (model, mining,
retrieval, evaluation, validation) named like a field of that package's
config dataclasses either has no default or the field's shipped value: a
caller that leaves the keyword out gets what `mmse run` ships, not a second
default that drifts from it.
"""
import dataclasses
import importlib
import inspect
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("model", "mining", "retrieval", "evaluation", "validation")

# Parameters named like a knob that are another setting: (module, function,
# parameter) -> what they are.
NOT_THE_KNOB = {
    ("model.minilm", "MiniLM.encode", "batch_size"):
        "texts per call of the teacher, not slates per training step",
    ("model.trainer", "_dataset", "seed"):
        "the shuffle's seed, None for the evaluation's unshuffled reads",
    ("retrieval.topk", "exact_top_k", "batch_size"):
        "queries scored together, not catalogue items per tower call",
}


def _shipped(package):
  """{field name: (where, shipped value)} of `package.config`'s dataclasses."""
  config = importlib.import_module(f"{package}.config")
  shipped = {}
  for cls in vars(config).values():
    if (inspect.isclass(cls) and dataclasses.is_dataclass(cls) and
        cls.__module__ == config.__name__):
      for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
          shipped[field.name] = (f"{config.__name__}.{cls.__name__}",
                                 field.default)
  return shipped


def _functions(module):
  """(qualified name, function) of the module's functions and methods."""
  for name, value in vars(module).items():
    if getattr(value, "__module__", None) != module.__name__:
      continue
    if inspect.isfunction(value):
      yield name, value
    elif inspect.isclass(value):
      for attribute, member in vars(value).items():
        member = getattr(member, "__func__", member)  # static, class methods
        if inspect.isfunction(member):
          yield f"{name}.{attribute}", member


def _knob_defaults():
  """(module, function, parameter, default, where, shipped) of every
  parameter with a default named like one of its package's knobs."""
  for package in PACKAGES:
    shipped = _shipped(package)
    for path in sorted((ROOT / package).glob("*.py")):
      if path.stem in ("__init__", "config"):
        continue
      module = importlib.import_module(f"{package}.{path.stem}")
      for qualname, function in _functions(module):
        for parameter in inspect.signature(function).parameters.values():
          if (parameter.name in shipped and
              parameter.default is not inspect.Parameter.empty):
            yield (module.__name__, qualname, parameter.name,
                   parameter.default, *shipped[parameter.name])


def test_a_keyword_default_is_the_shipped_config_value():
  found = list(_knob_defaults())
  differ = [f"{module}.{function}({name}={default!r}): {where}.{name} ships "
            f"{value!r}"
            for module, function, name, default, where, value in found
            if (module, function, name) not in NOT_THE_KNOB
            and default != value]
  assert not differ, "\n".join(differ)
  # The scan reaches the objectives' and the index's knobs, and every
  # exception above still names a parameter that exists.
  seen = {(module, function, name) for module, function, name, *_ in found}
  assert ("model.tasks", "MultiStageRetrieval.__init__", "temperature") in seen
  assert ("retrieval.ann", "build", "kind") in seen
  assert set(NOT_THE_KNOB) <= seen
