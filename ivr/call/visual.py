"""The visual guide on the caller's phone (the page is `web/guide.py`): which of its buttons apply at
the question the call is at, what a button does to the call (as the engine takes it), and the text
the page shows for a step. Pure: no Flask, no I/O.

A button pressed on the page is kept in the session (`Session.page`) until a webhook of the call
applies it: the one Twilio makes when the server moves the live call, or else the call's next turn."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace

from .answers import REASON_PROMPTS, ask, choose, enter, log, technical_failure, transfer
from .flow import Flow, Node
from .prompts import Prompts
from .session import Action, Hangup, PageAction, Say, Session, Transfer

# The page's buttons, in the order shown, named as the agent's document and the diagram name them
# (the page itself shows the `page.*` sentences, which supervisors may reword).
BUTTONS = {"fait": "C'est fait", "resolu": "C'est résolu", "echec": "Ça ne marche pas", "conseiller": "Parler à un conseiller"}
DONE_KEY = "1"  # « Tapez 1 quand c'est fait » : the key « C'est fait » stands for
_QUESTIONS = ("wait", "menu", "digits")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_LABEL = re.compile(r"«\s*(.+?)\s*»")
_NO_BREAK = re.compile(r" (?=[:;?!])")


def buttons(flow: Flow, session: Session, agents: bool = True) -> tuple[str, ...]:
    """The buttons that apply at the question the call is at now (none once it has ended or is
    with an agent): « C'est fait » where the caller acts on their phone, « C'est résolu » and « Ça
    ne marche pas » there and at the « is it solved? » questions, « Parler à un conseiller » at any
    question while an agent can answer (`agents`)."""
    node = flow.nodes.get(session.node)
    if session.ended or node is None or node.type not in _QUESTIONS or session.phase != "ask":
        return ()
    found = []
    done = node.choices.get(DONE_KEY)
    acting = node.type == "wait" and not node.field  # an action on the phone, not a result to report (the test's)
    if acting and done is not None and done.answer is None:
        found.append("fait")
    guide = flow.visual_guide
    solved_question = guide is not None and node.type == "menu" and any(choice.goto == guide.resolved for choice in node.choices.values())
    if guide is not None and (acting or solved_question):
        found.append("resolu")
    if guide is not None and (node.type == "wait" or solved_question) and guide.not_working.get(node.step or 0) not in (None, node.name):
        found.append("echec")
    if agents:
        found.append("conseiller")
    return tuple(found)


def press(session: Session, action: str) -> Session:
    """The session with a button pressed at its current question, to be applied by the call's next webhook."""
    return session.evolve(page=f"{session.node}|{session.phase}|{action}")


def pressed(session: Session, at: float) -> PageAction | None:
    """The button pressed on the page and not yet applied, as the engine's event."""
    if not session.page:
        return None
    node, phase, action = (session.page.split("|") + ["", ""])[:3]
    return PageAction(node, phase, action, at)


def apply(flow: Flow, session: Session, event: PageAction) -> tuple[Session, tuple[Action, ...]]:
    """A button of the page, applied to the call: « c'est noté », then where the button leads. A
    button pressed at a question the call has left since (a key pressed meanwhile) changes nothing:
    the caller hears that, and the question they are at."""
    session = session.evolve(page="")
    node = flow.nodes.get(session.node)
    if node is None or (event.node, event.phase) != (session.node, session.phase) or event.action not in buttons(flow, session):
        session = log(session, event.at, "page", action=event.action, late=True)
        if session.ended:
            return session, again(session)
        if node is None:
            return technical_failure(session, event.at)
        return session, (ask(flow, node, session, full=False, lead=(Say("guide_visuel.deja"),)),)
    session = log(session, event.at, "page", action=event.action)
    noted = Say("guide_visuel.note")
    if event.action == "conseiller":
        return transfer(session, "caller_request", event.at, (noted, Say(REASON_PROMPTS["caller_request"])))
    key, target = _key_and_target(flow, node, event.action)
    if key is not None:
        session, actions = choose(flow, node, session, key, event.at)
    else:
        session, actions = enter(flow, session, target, event.at)
    first, *rest = actions
    return session, (replace(first, says=(noted, *first.says)), *rest)


def again(session: Session) -> tuple[Action, ...]:
    """What an ended call does when Twilio asks for the page's webhook (the call was moved as it
    ended): put through to an agent, the transfer again, not a hang-up; else its end."""
    return (Transfer(session.transfer_reason or "caller_request", ()),) if session.outcome == "transferred" else (Hangup(),)


def _key_and_target(flow: Flow, node: Node, action: str) -> tuple[str | None, str]:
    """The key the button stands for at `node` (so that the answer is kept as if pressed), or None
    and the step it leads to."""
    if action == "fait":
        return DONE_KEY, ""
    guide = flow.visual_guide
    target = guide.resolved if action == "resolu" else guide.not_working[node.step or 0]
    return next((choice.key for choice in node.choices.values() if choice.goto == target), None), target


# ---- what the page shows ------------------------------------------------------------------------


def lines(flow: Flow, prompts: Prompts, session: Session, params: Mapping[str, str] | None = None,
          instead: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The sentences the page shows at the question the call is at: its step's `visual` text, else
    what the caller hears there now (a number read back, the wording said while closed: `instead`),
    filled with `params` as on the line."""
    node = flow.nodes[session.node]
    if node.visual and node.visual in prompts and session.phase == "ask":
        return _sentences(prompts.text(node.visual))
    heard = ask(flow, node, session, full=True)
    keys = [((instead or {}).get(say.key, say.key), {**(params or {}), **dict(say.params)}) for say in heard.says]
    return _sentences(" ".join(prompts.text(key, values) for key, values in keys if key is not None and key in prompts))


def segments(line: str) -> tuple[tuple[str, bool], ...]:
    """A sentence cut into plain text and the « labels » to tap on the phone (True); the space before
    a French « : ; ? ! » does not break (the sign never starts a line)."""
    parts = _LABEL.split(_NO_BREAK.sub("\u00a0", line))
    return tuple((part, index % 2 == 1) for index, part in enumerate(parts) if part)


def whole_guide(flow: Flow, prompts: Prompts) -> tuple[tuple[int, tuple[tuple[str, ...], ...]], ...]:
    """Every step where the caller acts on their phone and that has a visual text, in the flow's
    order: (step, the texts of its actions)."""
    steps: dict[int, list[tuple[str, ...]]] = {}
    for node in flow.nodes.values():
        if node.type == "wait" and node.visual and node.step is not None and node.visual in prompts:
            steps.setdefault(node.step, []).append(_sentences(prompts.text(node.visual)))
    return tuple((step, tuple(texts)) for step, texts in sorted(steps.items()))


def _sentences(text: str) -> tuple[str, ...]:
    return tuple(sentence for sentence in _SENTENCE_END.split(text.strip()) if sentence)
