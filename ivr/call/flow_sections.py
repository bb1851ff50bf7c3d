"""The flow's top-level sections beyond the nodes (sentences said while closed, inferences, the
questions asked while queued, the visual guide's buttons), checked for the loader's `Checker`, which these methods join."""

from __future__ import annotations

from types import MappingProxyType

from .flow import CONDITIONS, SAID, Inference, Node, Variant, VisualGuide
from .yamlfile import LineMap


class SectionChecks:
    """Checks of the flow's sections; `error`, `link` and `prompt_ref` are the Checker's."""

    def closed_prompts(self, data: LineMap) -> dict[str, str]:
        # {phrase dite d'habitude: phrase dite à la place quand le service client est fermé}
        raw, line = data.get("closed_prompts"), data.line_of("closed_prompts")
        if not isinstance(raw, LineMap):
            self.error(line, "« closed_prompts » associe une phrase à celle dite à sa place quand le service est fermé")
            return {}
        found = {}
        for usual, instead in raw.items():
            where = f"« closed_prompts », « {usual} »"
            self.prompt_ref(str(usual), raw.line_of(usual), where)
            self.prompt_ref(instead, raw.line_of(usual), where)
            found[str(usual)] = str(instead)
        return found

    def facts(self, data: LineMap) -> dict[str, frozenset[str]]:
        # {fait: [phrases qui le disent]}: once one of them is said, « dit:fait » holds for the call.
        raw, line = data.get("facts"), data.line_of("facts")
        if not isinstance(raw, LineMap):
            self.error(line, "« facts » associe un fait (fermeture, conseiller…) aux phrases qui le disent : fermeture: [horaires.ferme, …]")
            return {}
        found = {}
        for fact, keys in raw.items():
            if not isinstance(keys, list) or not keys:
                self.error(raw.line_of(fact), f"« facts », « {fact} » : la liste des phrases qui disent ce fait, ex. [horaires.ferme]")
                continue
            for key in keys:
                self.prompt_ref(key, raw.line_of(fact), f"« facts », « {fact} »")
            found[str(fact)] = frozenset(map(str, keys))
        return found

    def variants(self, data: LineMap, facts: dict[str, frozenset[str]]) -> dict[str, tuple[Variant, ...]]:
        # {phrase: [{when: [conditions], say: phrase dite à la place (ou rien : say: null)}, …]}
        raw, line = data.get("variants"), data.line_of("variants")
        if not isinstance(raw, LineMap):
            self.error(line, "« variants » associe une phrase à celles dites à sa place selon l'appel : "
                             "accueil.bienvenue: [{when: [ferme], say: accueil.bienvenue_ferme}]")
            return {}
        found: dict[str, tuple[Variant, ...]] = {}
        for usual, items in raw.items():
            where = f"« variants », « {usual} »"
            self.prompt_ref(str(usual), raw.line_of(usual), where)
            if not isinstance(items, list) or not items:
                self.error(raw.line_of(usual), f"{where} : une liste de {{when: [conditions], say: phrase}}")
                continue
            variants = []
            for item in items:
                item_line = item.line if isinstance(item, LineMap) else raw.line_of(usual)
                if not isinstance(item, LineMap) or set(item) - {"when", "say"} or "when" not in item or "say" not in item:
                    self.error(item_line, f"{where} : chaque variante s'écrit {{when: [conditions], say: phrase}} (say: null pour ne rien dire)")
                    continue
                when = item["when"] if isinstance(item["when"], list) else [item["when"]]
                for condition in when:
                    self._condition(str(condition), facts, item_line, where)
                if item["say"] is not None:
                    self.prompt_ref(item["say"], item_line, where)
                variants.append(Variant(tuple(map(str, when)), None if item["say"] is None else str(item["say"]), item_line))
            found[str(usual)] = tuple(variants)
        return found

    def _condition(self, condition: str, facts: dict[str, frozenset[str]], line: int, where: str) -> None:
        if condition.startswith(SAID):
            if condition[len(SAID):] not in facts:
                self.error(line, f"{where} : « {condition} » : le fait « {condition[len(SAID):]} » n'est pas dans « facts » "
                                 f"(faits : {', '.join(sorted(facts)) or 'aucun'})")
        elif condition not in CONDITIONS:
            self.error(line, f"{where} : condition inconnue « {condition} » (possibles : {', '.join(CONDITIONS)}, "
                             f"ou {SAID}fait pour un fait déjà dit)")

    def inferences(self, data: LineMap, nodes: dict[str, Node]) -> tuple[Inference, ...]:
        # [{when: {champ: réponse}, then: {champ: réponse, …}}, …]: each field is asked by a step; a
        # menu's answer must be one of its choices, so that the step it skips knows where to go on.
        raw, line = data.get("inferences"), data.line_of("inferences")
        if not isinstance(raw, list):
            self.error(line, "« inferences » est une liste de règles {when: {champ: réponse}, then: {champ: réponse}}")
            return ()
        asked = {node.field: node for node in nodes.values() if node.field}
        found = []
        for index, rule in enumerate(raw):
            where = f"« inferences », règle {index + 1}"
            rule_line = rule.line if isinstance(rule, LineMap) else line
            if not isinstance(rule, LineMap) or set(rule) != {"when", "then"} or not all(isinstance(rule[k], LineMap) and rule[k] for k in rule):
                self.error(rule_line, f"{where} : elle s'écrit {{when: {{champ: réponse}}, then: {{champ: réponse, …}}}}")
                continue
            parts = {}
            for part in ("when", "then"):
                values = {}
                for field_name, answer in rule[part].items():
                    node = asked.get(str(field_name))
                    answers = {choice.answer for choice in node.choices.values()} if node is not None and node.type == "menu" else None
                    if node is None:
                        self.error(rule[part].line_of(field_name), f"{where} : aucune étape ne demande « {field_name} »")
                    elif answers is not None and str(answer) not in answers:
                        possible = ", ".join(sorted(a for a in answers if a))
                        self.error(rule[part].line_of(field_name),
                                   f"{where} : « {answer} » n'est pas une réponse de l'étape « {node.name} » (possibles : {possible})")
                    else:
                        values[str(field_name)] = str(answer)
                parts[part] = values
            if set(parts["when"]) & set(parts["then"]):
                self.error(rule_line, f"{where} : un champ ne peut pas se déduire de lui-même")
                continue
            found.append(Inference(rule_line, MappingProxyType(parts["when"]), MappingProxyType(parts["then"])))
        return tuple(found)

    def while_queued(self, data: LineMap, nodes: dict[str, Node]) -> tuple[tuple[str, str] | None, tuple[str, ...]]:
        """The queued part (first step, step where it stops) and the questions before which the
        computer page's code is said (`computer_code`: one, or a list: the first says it, the next
        ones remind it)."""
        raw, line = data.get("while_queued"), data.line_of("while_queued")
        usage = ("« while_queued » s'écrit {from: première_étape, to: étape_où_s_arrêter} (deux étapes du parcours), "
                 "avec si on veut « computer_code: étape » (la question avant laquelle le code de la page ordinateur est dit)")
        if not isinstance(raw, LineMap) or not {"from", "to"} <= set(raw) <= {"from", "to", "computer_code"} \
                or not all(str(raw[k]) in nodes for k in ("from", "to")):
            self.error(line, usage)
            return None, ()
        first = nodes[str(raw["from"])]
        if first.type not in ("menu", "digits"):
            self.error(line, f"« while_queued » : « {first.name} » doit être une question (menu ou saisie)")
            return None, ()
        given = raw.get("computer_code")
        codes = tuple(str(name) for name in (given if isinstance(given, list) else [given] if given is not None else []))
        for name in codes:
            if name not in nodes or nodes[name].type not in ("menu", "digits"):
                self.error(raw.line_of("computer_code"), f"« while_queued », « computer_code » : « {name} » doit être une question "
                                                         "posée pendant l'attente (menu ou saisie)")
                codes = ()
                break
        return (str(raw["from"]), str(raw["to"])), codes

    def visual_guide(self, data: LineMap) -> VisualGuide | None:
        # {resolved: étape, not_working: {numéro d'étape: étape suivante du diagnostic}}
        raw, line = data.get("visual_guide"), data.line_of("visual_guide")
        usage = "« visual_guide » s'écrit {resolved: étape_résolu, not_working: {1: étape, 2: étape, …}}"
        if not isinstance(raw, LineMap) or set(raw) != {"resolved", "not_working"} or not isinstance(raw["not_working"], LineMap):
            self.error(line, usage)
            return None
        resolved = str(raw["resolved"])
        self.link(resolved, raw.line_of("resolved"), "« visual_guide », « resolved »")
        steps = {}
        for step, target in raw["not_working"].items():
            where = f"« visual_guide », « not_working », étape {step}"
            if not isinstance(step, int) or isinstance(step, bool) or not 1 <= step <= 6:
                self.error(raw["not_working"].line_of(step), f"{where} : le numéro d'étape va de 1 à 6")
                continue
            self.link(str(target), raw["not_working"].line_of(step), where)
            steps[step] = str(target)
        return VisualGuide(resolved, MappingProxyType(steps))
