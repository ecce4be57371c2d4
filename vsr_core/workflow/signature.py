"""Reading a V1 node class's declared inputs: which are sockets, which are widgets."""
from __future__ import annotations

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")


def declared_inputs(cls) -> list[tuple[str, str, object, dict, bool]]:
    """[(name, type, raw type spec, options, required)] in declaration order (required first)."""
    spec = cls.INPUT_TYPES()
    out = []
    for section in ("required", "optional"):
        for name, decl in spec.get(section, {}).items():
            raw = decl[0]
            options = decl[1] if len(decl) > 1 and isinstance(decl[1], dict) else {}
            kind = "COMBO" if isinstance(raw, (list, tuple)) else str(raw)
            out.append((name, kind, raw, options, section == "required"))
    return out


def is_widget(kind: str, options: dict) -> bool:
    return kind in WIDGET_TYPES and not options.get("forceInput", False)


def has_seed_control(name: str, kind: str, options: dict) -> bool:
    """The frontend stores an extra 'control_after_generate' value after seed widgets."""
    if kind != "INT":
        return False
    return bool(options.get("control_after_generate", name in ("seed", "noise_seed")))
