"""The flow as a diagram: Mermaid text (readable in GitLab, GitHub, mermaid.live) and Graphviz DOT."""

from __future__ import annotations

from ..call.engine import spoken_key
from ..call.flow import Flow, Node
from ..call.visual import BUTTONS

_MERMAID_SHAPES = {"end": ("([", "])"), "transfer": ("[[", "]]"), "say": ("[/", "/]"), "record": ("[(", ")]"), "branch": ("{", "}")}
_DOT_SHAPES = {"end": "doubleoctagon", "transfer": "box3d", "say": "note", "record": "cylinder", "digits": "component", "branch": "diamond"}


def _label(node: Node, figures: dict | None = None) -> str:
    step = f" · étape {node.step}" if node.step else ""
    extra = f"\\n{figures[node.name]}" if figures and node.name in figures else ""
    return f"{node.name}\\n{node.type}{step}{extra}"


def _edges(node: Node) -> list[tuple[str, str]]:
    edges = []
    for key, choice in node.choices.items():
        label = spoken_key(key) + (f" {choice.answer}" if choice.answer else "")
        edges.append((choice.goto, label))
    for field, target in node.branches.items():
        edges.append((target, f"si {field} connu"))
    if node.next:
        edges.append((node.next, "saisie" if node.type == "digits" else "sinon" if node.type == "branch" else ""))
    if node.silence:
        edges.append((node.silence, "silence"))
    if node.if_empty:
        edges.append((node.if_empty, "message vide"))
    return edges


def mermaid(flow: Flow, figures: dict | None = None) -> str:
    """Mermaid flowchart of the flow; `figures` adds a line of numbers under each node."""
    lines = ["flowchart TD"]
    for node in flow.nodes.values():
        opening, closing = _MERMAID_SHAPES.get(node.type, ("[", "]"))
        text = _label(node, figures).replace("\\n", "<br/>").replace('"', "'")
        lines.append(f'    {node.name}{opening}"{text}"{closing}')
    for node in flow.nodes.values():
        for target, label in _edges(node):
            arrow = f' -->|"{label}"| ' if label else " --> "
            lines.append(f"    {node.name}{arrow}{target}")
    for index, rule in enumerate(flow.inferences, 1):
        lines.append(f'    deduit{index}>"{_rule(rule)}"]')
    if flow.visual_guide is not None:
        lines.append(f'    guide_visuel>"{_visual(flow)}"]')
    return "\n".join(lines) + "\n"


def _rule(rule) -> str:
    """An inference rule as a supervisor reads it."""
    when = ", ".join(f"{field} = {value}" for field, value in rule.when.items())
    then = ", ".join(f"{field} = {value}" for field, value in rule.then.items())
    return f"déduit : si {when}, alors {then} (non demandés)".replace('"', "'")


def _visual(flow: Flow) -> str:
    """Where the visual guide's buttons lead, as a supervisor reads it."""
    guide = flow.visual_guide
    steps = ", ".join(f"étape {step} → {target}" for step, target in sorted(guide.not_working.items()))
    return f"guide visuel : « {BUTTONS['resolu']} » → {guide.resolved} ; « {BUTTONS['echec']} » : {steps}"


def dot(flow: Flow, figures: dict | None = None) -> str:
    """Graphviz DOT of the flow (for an SVG)."""
    lines = ["digraph flow {", '  rankdir=TB; node [fontname="Helvetica", shape=box, style=rounded];']
    for node in flow.nodes.values():
        shape = _DOT_SHAPES.get(node.type, "box")
        lines.append(f'  {node.name} [label="{_label(node, figures)}", shape={shape}];')
    for node in flow.nodes.values():
        for target, label in _edges(node):
            lines.append(f'  {node.name} -> {target} [label="{label}"];')
    for index, rule in enumerate(flow.inferences, 1):
        lines.append(f'  deduit{index} [label="{_rule(rule)}", shape=note];')
    if flow.visual_guide is not None:
        lines.append(f'  guide_visuel [label="{_visual(flow)}", shape=note];')
    lines.append("}")
    return "\n".join(lines) + "\n"
