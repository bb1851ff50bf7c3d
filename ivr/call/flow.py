"""The call flow as data: frozen dataclasses of nodes and settings (the loader that checks a YAML file
is `flow_loader`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from types import MappingProxyType

NODE_TYPES = ("say", "menu", "wait", "digits", "record", "end", "transfer", "branch", "rating")
RATINGS = "12345"  # the keys of a satisfaction rating
# Keys that work at every question and therefore cannot be a menu choice.
REPEAT_KEY = "*"
AGENT_KEY = "0"
# The key that passes a question the caller cannot answer (menus: « Vous ne savez pas, tapez 9 »;
# choices among options: « Pour passer, tapez 9 »): one key, learnt once. A number keyed in is
# passed with dièse alone (9 may be one of its digits).
SKIP_KEY = "9"
CHOICE_KEYS = "123456789#"
# Sentences the engine itself needs, whatever the flow says.
SYSTEM_PROMPTS = (
    "commun.silence",
    "commun.touche_invalide",
    "commun.attente",
    "saisie.relecture",
    "saisie.relecture_courte",
    "saisie.longueur",
    "saisie.prefixe",
    "saisie.cle",
    "saisie.chiffres",
    "transfert.demande",
    "transfert.silence",
    "transfert.touches",
    "transfert.erreur",
    "conseiller.indisponible",
    "conseiller.chuchotement",
    "attente.message",
    "attente.position",
    "horaires.ferme",
    "horaires.au_revoir",
    "sms.envoye",
    "sms.en_cours",
    "sms.deja_envoye",
    "sms.pas_mobile",
    "sms.indisponible",
    "sms.echec",
    "attente.estimation",
    "attente.rappel",
    "fin.rappel",
    "parole.confirmation",
    "parole.pas_compris",
    "saisie.corse",
    "saisie.passee",
    "saisie.autre_option",
    "commun.message_vide",
    "conseiller.aucun",
    "incident.annonce",
    "incident.suite",
    "satisfaction.merci",
    "satisfaction.sms",
    "satisfaction.sms_merci",
    "satisfaction.sms_incompris",
    "satisfaction.sms_inconnu",
    "satisfaction.sms_deja",
    "satisfaction.sms_trop_tard",
    "satisfaction.sms_erreur",
    "fin.au_revoir",
    "etape6.transfert_file",
    "attente.questions_finies",
    "attente.code_ordinateur",
    "attente.code_ordinateur_rappel",
    "guide_visuel.note",
    "guide_visuel.deja",
    "sms.lien_general",
    *(f"page.{name}" for name in (
        "titre", "a_faire", "fait", "resolu", "echec", "conseiller", "clavier_aussi", "clavier", "choix_en_cours", "avec_conseiller_titre",
        "avec_conseiller", "fin_titre", "fin", "tout_le_guide", "indisponible_titre", "indisponible", "note_ok", "note_bientot",
        "note_attente", "note_deja", "note_conseiller", "note_fini", "note_indisponible", "lien_titre", "lien_inconnu", "lien_expire",
        "autre_site", "trop_long", "appareil_bouton", "appareil_titre", "appareil_explication", "appareil_envoyer", "appareil_annuler",
        "note_appareil", "ordinateur_titre", "ordinateur_code", "ordinateur_valider", "ordinateur_code_faux", "ordinateur_trop",
        "ordinateur_merci", "ordinateur_fini", "appareil_bouton_ordinateur", "appareil_choix", "appareil_ipad", "appareil_mac",
        "ordinateur_expire", "ordinateur_indisponible", "reessayer")),  # the visual guide's page (web/guide.py)
)

@dataclass(frozen=True)
class Choice:
    """One key of a menu: where it leads and the answer it records."""

    key: str
    goto: str
    answer: str | None = None


# What can be true of a call, for the flow's `variants` (a sentence said instead of another).
CONDITIONS = {
    "ferme": "le service client est fermé (hors horaires)",
    "ouvert": "le service client est ouvert",
    "sans_conseiller": "aucun conseiller n'est joignable (fermé, ou aucune destination configurée)",
    "sans_sms": "l'envoi de SMS n'est pas configuré",
    "fixe": "le numéro de l'appelant n'est pas un portable (un SMS ne l'atteindrait pas)",
    "sans_reponses": "l'appelant n'a encore répondu à aucune question",
    "file": "un conseiller se joint par une file d'attente (les dernières questions y sont posées)",
    "direct": "un conseiller se joint directement (numéro, SIP, client)",
}
SAID = "dit:"  # « dit:fermeture »: the fact « fermeture » (see the flow's `facts`) was already said to this call


@dataclass(frozen=True)
class Variant:
    """A sentence said instead of another when every condition of `when` is true for the call
    (None: nothing is said instead)."""

    when: tuple[str, ...]
    say: str | None
    line: int = 0


@dataclass(frozen=True)
class Inference:
    """An answer the call already has that gives others: when every `when` answer is given, the
    `then` answers are taken as given too (marked inferred) and their questions are not asked."""

    line: int
    when: Mapping[str, str]
    then: Mapping[str, str]


@dataclass(frozen=True)
class Guide:
    """A guide sent by SMS when the caller presses `key` (the text, with its link, is a prompt)."""

    key: str
    sms: str


@dataclass(frozen=True)
class VisualGuide:
    """Where the visual guide's buttons lead: « C'est résolu » to `resolved`; « Ça ne marche pas »
    to the step that comes next in the diagnostic (`not_working`, by step number)."""

    resolved: str
    not_working: Mapping[int, str]


@dataclass(frozen=True)
class Node:
    """One point of the call."""

    name: str
    type: str
    line: int
    prompt: str
    short: str | None = None
    hold: str | None = None
    step: int | None = None
    field: str | None = None
    choices: Mapping[str, Choice] = dataclass_field(default_factory=lambda: MappingProxyType({}))
    next: str | None = None
    check: str | None = None
    confirm: bool = True
    optional: bool = False  # digits: silence or # alone skips the question
    options: Mapping[str, str] = dataclass_field(default_factory=lambda: MappingProxyType({}))  # digits: key → label
    max_length: int = 60  # record: seconds
    say_caller: bool = False  # menu: its sentence says the caller's number ({numero})
    guide: Guide | None = None  # menu, wait: a guide the caller can get by SMS with an announced key
    speech: Mapping[str, tuple[str, ...]] = dataclass_field(default_factory=lambda: MappingProxyType({}))  # key → words
    outcome: str | None = None
    reason: str | None = None
    silence: str | None = None  # menu: where silence leads (instead of asking again, then an agent)
    if_empty: str | None = None  # record: where an empty message leads (instead of `next`)
    branches: Mapping[str, str] = dataclass_field(default_factory=lambda: MappingProxyType({}))  # branch: answered field → node
    visual: str | None = None  # menu, wait: the text the visual guide shows at this step (a prompt key)

    @property
    def exits(self) -> tuple[str, ...]:
        """Names of the nodes this one can lead to."""
        targets = [c.goto for c in self.choices.values()]
        targets.extend(self.branches.values())
        targets.extend(name for name in (self.next, self.silence, self.if_empty) if name)
        return tuple(targets)


@dataclass(frozen=True)
class Settings:
    """Timings and limits shared by every node."""

    max_attempts: int = 3  # failed answers to one question before an agent takes over
    menu_timeout: int = 6  # seconds of silence after a menu before it counts as no answer
    digits_timeout: int = 12  # seconds of silence while keying a number
    wait_pause: int = 20  # seconds of quiet between two reminders while the caller acts
    wait_max: int = 900  # seconds a caller may take on a "tapez 1 quand c'est fait" step
    speech_confidence: int = 50  # percent: below it, what the caller said is read back for confirmation


@dataclass(frozen=True)
class Flow:
    """A checked flow, ready for calls."""

    start: str
    nodes: Mapping[str, Node]
    settings: Settings
    version: str
    source: str
    after_hours: str | None = None  # where a caller goes who needs an agent while none can answer (closed, unanswered)
    satisfaction: str | None = None  # the rating question asked when an agent hands the caller back, by SMS when gone
    ratings_off: bool = False  # « satisfaction: false »: no rating asked anywhere (the rating steps are passed)
    inferences: tuple[Inference, ...] = ()  # answers deduced from others: nothing asked twice
    # With a queue (TaskRouter), the questions from the first of these steps up to the second (not
    # included) are asked while the caller waits for an agent, not before.
    while_queued: tuple[str, str] | None = None
    # Sentences said instead of others while the service is closed (« dès l'ouverture »…).
    closed_prompts: Mapping[str, str] = dataclass_field(default_factory=lambda: MappingProxyType({}))
    visual_guide: VisualGuide | None = None  # the buttons of the page on the caller's phone (none: no buttons)
    # Sentences said instead of others, by what is true of the call (`closed_prompts` among them, as
    # « when: [ferme] »): the first variant whose conditions all hold is said.
    variants: Mapping[str, tuple[Variant, ...]] = dataclass_field(default_factory=lambda: MappingProxyType({}))
    # Facts a caller is told once (« fermeture », « conseiller »…) and the sentences that state each:
    # once one is said, « dit:fait » holds for the rest of the call.
    facts: Mapping[str, frozenset[str]] = dataclass_field(default_factory=lambda: MappingProxyType({}))
    # The queued questions before which the caller hears the computer page's address and code
    # (« attente.code_ordinateur », then « attente.code_ordinateur_rappel »): the computer then
    # answers its questions (issue 36).
    computer_code: tuple[str, ...] = ()


class FlowError(Exception):
    """The flow cannot be used; `problems` lists every reason with file and line."""

    def __init__(self, problems: list):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems
