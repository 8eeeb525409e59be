"""``unibind encoders list``: the encoder profiles, their models and output dims."""

from __future__ import annotations

import typer

from unibind.cli._app import JSON_OPTION, app, emit
from unibind.encoders.profiles import DESCRIPTIONS, PROFILES

encoders_app = typer.Typer(no_args_is_help=True, help="Encoder profiles.")
app.add_typer(encoders_app, name="encoders")


@encoders_app.command("list")
def list_profiles(as_json: bool = JSON_OPTION,
                  resolve: bool = typer.Option(False, help="Load models to report dims.")) -> None:
    """Show profiles, their encoders and (with --resolve) output dims."""
    from unibind.encoders import backend_class, load_encoder, resolve_profile
    from unibind.errors import UnibindError
    from unibind.features.folder import VIEW_SEP
    from unibind.modalities import get_modality

    out = {}
    for name in PROFILES:
        try:
            specs = resolve_profile(name)
        except UnibindError as exc:  # e.g. offline packages not installed
            out[name] = {"description": DESCRIPTIONS[name], "error": str(exc)}
            continue
        entry = {"description": DESCRIPTIONS[name], "encoders": {}}
        for m, spec in specs.items():
            enc = {"backend": spec.backend, "source": spec.source, "options": spec.options,
                   "dim": backend_class(spec.backend).config_dim(spec)
                   or get_modality(m.split(VIEW_SEP)[0]).known_dims.get(spec.source)}
            if resolve:
                try:
                    enc["dim"] = load_encoder(spec).dim
                except UnibindError as exc:  # the hub unreachable, a folder missing
                    enc["error"] = str(exc).splitlines()[0]
            entry["encoders"][m] = enc
        out[name] = entry
    lines = []
    for name, entry in out.items():
        lines.append(f"{name}: {entry['description']}")
        for m, enc in entry.get("encoders", {}).items():
            lines.append(f"  {m:<9} {enc['backend']:<18} dim {enc['dim']}  {enc['source']}"
                         + (f"  ({enc['error']})" if "error" in enc else ""))
        if "error" in entry:
            lines.append(f"  unavailable: {entry['error']}")
    emit(out, as_json, "\n".join(lines))
