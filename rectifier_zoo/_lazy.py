"""Package namespaces whose names load on first use (PEP 562), so that importing a package runs
none of its heavy imports (Keras, TensorFlow) until a name is used."""

import importlib


def lazy_namespace(package: str, exports: dict[str, str], submodules=()):
    """`(__getattr__, __dir__, __all__)` for `package`.

    Args:
        package: the package's `__name__`.
        exports: public name -> the submodule (relative to `package`) that defines it.
        submodules: submodules reachable as attributes.
    """
    names = sorted([*exports, *submodules])

    def __getattr__(name):
        if name in exports:
            value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        elif name in submodules:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__():
        return sorted({*vars(importlib.import_module(package)), *names})

    return __getattr__, __dir__, names
