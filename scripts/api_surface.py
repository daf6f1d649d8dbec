"""Print the size of the public surface: parameters of each stage entry point, calls over 10 and over 12
parameters, names in the top-level ``__all__`` and in every ``__all__`` together (issue 22's before/after counts).

    python scripts/api_surface.py
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import tl_neuronprobe as tnp

STAGES = ("extract", "evaluate_encoded", "evaluate_used", "compare_encoded_used", "textualize", "describe", "report")


def width(fn) -> int:
    return sum(1 for p in inspect.signature(fn).parameters.values()
               if p.name not in ("self", "cls") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))


def main() -> None:
    objects: dict[int, tuple[str, object]] = {}
    for info in [None, *pkgutil.walk_packages(tnp.__path__, "tl_neuronprobe.")]:
        if info is not None and any(part.startswith("_") for part in info.name.split(".")):
            continue  # __main__ and private modules: their __all__ is for the package's own imports
        module = tnp if info is None else importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name, None)
            if obj is not None and (inspect.isfunction(obj) or inspect.isclass(obj)):
                objects.setdefault(id(obj), (f"{module.__name__}.{name}", obj))
    widths = []
    for qual, obj in objects.values():
        fn = obj if inspect.isfunction(obj) else getattr(obj, "__init__", None)
        try:
            widths.append((width(fn), qual))
        except (TypeError, ValueError):
            continue
    widths.sort(reverse=True)
    print("parameters per stage entry point: " + ", ".join(f"{s} {width(getattr(tnp, s))}" for s in STAGES
                                                             if hasattr(tnp, s)))
    print(f"top-level __all__: {len(tnp.__all__)} names; functions and classes in the __all__ of "
          f"public modules: {len(objects)}")
    print(f"public calls over 10 parameters: {sum(w > 10 for w, _ in widths)}; over 12: "
          f"{sum(w > 12 for w, _ in widths)}")
    for w, qual in widths[:8]:
        print(f"  {w:3d}  {qual}")


if __name__ == "__main__":
    main()
