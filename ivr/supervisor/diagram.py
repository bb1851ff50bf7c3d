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


def sections(flow: Flow) -> list[tuple[str, str, list[str]]]:
    """The flow cut into parts a person reads at once: one per step of the guide (the welcome with
    step 1), then the endings, ratings and what happens when no agent can answer. (id, title, nodes)."""
    by_step: dict[int, list[str]] = {}
    rest = []
    for node in flow.nodes.values():
        if node.step is not None:
            by_step.setdefault(node.step, []).append(node.name)
        elif node.name != flow.start:
            rest.append(node.name)
    found = []
    for index, step in enumerate(sorted(by_step)):
        names = ([flow.start] if index == 0 and flow.start in flow.nodes and flow.nodes[flow.start].step is None else []) + by_step[step]
        found.append((f"etape{step}", f"Étape {step}", names))
    if rest:
        found.append(("fins", "Fins, notes et service fermé", rest))
    return found


def section_of(flow: Flow) -> dict[str, str]:
    """Each node's section id."""
    return {name: section for section, _, names in sections(flow) for name in names}


def dot(flow: Flow, figures: dict | None = None, only: list[str] | None = None, link: str = "?section={}") -> str:
    """Graphviz DOT of the flow (for an SVG); `only`: the nodes of one section, the steps they lead
    to elsewhere drawn as links to their section (`link`, formatted with its id)."""
    shown = set(only) if only is not None else set(flow.nodes)
    where = section_of(flow) if only is not None else {}
    lines = ["digraph flow {", '  rankdir=TB; node [fontname="Helvetica", fontsize=14, shape=box, style=rounded];',
             '  edge [fontname="Helvetica", fontsize=13];']
    for node in flow.nodes.values():
        if node.name in shown:
            shape = _DOT_SHAPES.get(node.type, "box")
            lines.append(f'  {node.name} [label="{_label(node, figures)}", shape={shape}];')
    elsewhere = set()
    for node in flow.nodes.values():
        if node.name not in shown:
            continue
        for target, label in _edges(node):
            if target not in shown and target not in elsewhere:
                elsewhere.add(target)
                section = where.get(target, "")
                title = next((title for id_, title, _ in sections(flow) if id_ == section), "")
                lines.append(f'  {target} [label="→ {target}\\n({title})", shape=plaintext, fontcolor="#1f4e8c", '
                             f'URL="{link.format(section)}", tooltip="Voir la partie « {title} »"];')
            lines.append(f'  {node.name} -> {target} [label="{label}"];')
    if only is None:
        for index, rule in enumerate(flow.inferences, 1):
            lines.append(f'  deduit{index} [label="{_rule(rule)}", shape=note];')
        if flow.visual_guide is not None:
            lines.append(f'  guide_visuel [label="{_visual(flow)}", shape=note];')
    lines.append("}")
    return "\n".join(lines) + "\n"
