"""The provenance of agents trained elsewhere (``pytest claims --agents MANIFEST``).

results.json's ``provenance.agents`` is the manifest as the suite recorded it
(:meth:`pgclaims.suite.external.Manifest.to_json`): its path and sha256, the user's ``source``
and ``versions``, the installed versions of the packages that read the checkpoints, and each
agent's adapter, checkpoint files, adapter options and every file's sha256. This module shows it
as it is; a run on the scale's own agents has no ``provenance.agents`` and no such section.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .fmt import esc

__all__ = ["agents_section"]


def _kv(items: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in items)


def _versions(d: Any) -> str:
    if not isinstance(d, dict) or not d:
        return "none given"
    return ", ".join(f"{k} {'not installed' if v is None else v}" for k, v in sorted(d.items()))


def _option_text(options: Any, digests: dict[str, Any]) -> str:
    """``key=value`` per adapter option; a file option by its name and its sha256 prefix."""
    if not isinstance(options, dict) or not options:
        return ""
    parts = []
    for k, v in sorted(options.items()):
        if isinstance(v, str) and v in digests:
            parts.append(f"{k}={Path(v).name} (sha256 {str(digests[v])[:16]})")
        else:
            parts.append(f"{k}={v if isinstance(v, str) else json.dumps(v)}")
    return ", ".join(parts)


def _file_rows(agents: list[Any], digests: dict[str, Any]) -> str:
    rows = []
    for agent in agents:
        if not isinstance(agent, dict):
            continue
        who = [agent.get("env", "?"), str(agent.get("algo", "?")).upper(),
               agent.get("seed", "?"), agent.get("adapter", "?")]
        ckpts = agent.get("checkpoints") or {}
        for it, ck in sorted(ckpts.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0):
            ck = ck if isinstance(ck, dict) else {"path": ck}
            path = str(ck.get("path", ""))
            cells = [*who, it]
            rows.append("".join(f"<td>{esc(c)}</td>" for c in cells)
                        + f'<td class="mono" title="{esc(path)}">{esc(Path(path).name)}</td>'
                        f'<td>{esc(_option_text(ck.get("options"), digests))}</td>'
                        f'<td class="mono">{esc(str(digests.get(path, "not recorded"))[:16])}'
                        "</td>")
    head = "".join(f"<th>{h}</th>" for h in ("env", "algo", "seed", "adapter", "iteration",
                                              "file", "options", "sha256 (first 16)"))
    return (f'<div class="scroll"><table class="grid" id="agent-files"><thead><tr>{head}</tr>'
            "</thead><tbody>" + "".join(f"<tr>{r}</tr>" for r in rows)
            + "</tbody></table></div>")


def agents_section(provenance: dict[str, Any]) -> str:
    """The "Agents" part of the provenance section; "" for the scale's own agents."""
    rec = provenance.get("agents")
    if not isinstance(rec, dict) or not rec:
        return ""
    items = [("source", rec.get("source") or "not recorded"),
             ("manifest", rec.get("manifest") or "not recorded"),
             ("manifest sha256", rec.get("manifest_sha256") or "not recorded"),
             ("versions (manifest)", _versions(rec.get("versions"))),
             ("installed here", _versions(rec.get("packages")))]
    agents = rec.get("agents") if isinstance(rec.get("agents"), list) else []
    digests = rec.get("sha256") if isinstance(rec.get("sha256"), dict) else {}
    return (f'<h3 id="agents">Agents: trained elsewhere</h3><p>This run measured '
            f"{len(agents)} external agent{'s' if len(agents) != 1 else ''} from an "
            "<code>--agents</code> manifest, read by the adapters named below (the versions "
            "under &quot;installed here&quot; are the ones that read them).</p>"
            f'<table class="kv" id="agents-source">{_kv(items)}</table>'
            f"{_file_rows(agents, digests)}")
