"""What a caller's own device tells about itself (issue 36): the system and its version, the browser
and its version, phone, tablet or computer, and the public IP our server sees. Step 6 of the guide
asks for these; a device that sent them answers those questions, which are then not asked (« relevé
sur l'appareil » for the agent).

Read from User-Agent Client Hints where the browser sends them (Chromium's Sec-CH-UA-* headers, asked
for with Accept-CH), from the User-Agent otherwise, parsed by the `ua-parser` library (uap-core's
tested regexes), never by regexes of our own. Pure: the web layer gives the headers."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from ua_parser import parse

# Asked of Chromium browsers on the device pages (`Accept-CH`), and required before the page is
# shown (`Critical-CH`: the browser retries the request with them at once). Low-entropy hints
# (Sec-CH-UA, -Mobile, -Platform) come unasked. https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Accept-CH
HINTS = ("Sec-CH-UA-Platform-Version", "Sec-CH-UA-Full-Version-List", "Sec-CH-UA-Model")
CRITICAL_HINTS = ("Sec-CH-UA-Platform-Version",)

PHONE, COMPUTER = "telephone", "ordinateur"  # the two devices a call can hear from
KIND_LABELS = {PHONE: "téléphone ou tablette", COMPUTER: "ordinateur"}

# The systems as the flow's answers name them (ua-parser's family → ours).
_SYSTEMS = {"iOS": "iOS", "iPadOS": "iOS", "Android": "Android", "Windows": "Windows", "Mac OS X": "macOS", "macOS": "macOS",
            "Linux": "Linux", "Ubuntu": "Linux", "Debian": "Linux", "Fedora": "Linux", "Chrome OS": "ChromeOS", "Chromium OS": "ChromeOS"}
_MOBILE = {"iOS", "Android"}
# UA-CH's platform names (Sec-CH-UA-Platform) → ours.
_PLATFORMS = {"Android": "Android", "iOS": "iOS", "Windows": "Windows", "macOS": "macOS", "Linux": "Linux", "Chrome OS": "ChromeOS",
              "Chromium OS": "ChromeOS"}
# Browsers by the names callers know (ua-parser's family → ours); the rest keep ua-parser's name.
_BROWSERS = {"Chrome": "Chrome", "Chrome Mobile": "Chrome", "Chrome Mobile iOS": "Chrome", "Chrome Mobile WebView": "Chrome",
             "HeadlessChrome": "Chrome", "Chromium": "Chromium", "Firefox": "Firefox", "Firefox Mobile": "Firefox", "Firefox iOS": "Firefox",
             "Edge": "Edge", "Edge Mobile": "Edge", "Safari": "Safari", "Mobile Safari": "Safari", "Mobile Safari UI/WKWebView": "Safari",
             "Opera": "Opera", "Opera Mobile": "Opera", "Samsung Internet": "Samsung Internet"}
# Browsers that send UA-CH (Chromium's family): their hints are believed over their User-Agent.
_CHROMIUM_FAMILY = {"Chrome", "Chromium", "Edge", "Opera", "Samsung Internet"}
# UA-CH brands by preference (the first real one wins; GREASE brands like « Not:A-Brand » are skipped).
_BRANDS = {"Microsoft Edge": "Edge", "Opera": "Opera", "Samsung Internet": "Samsung Internet", "Google Chrome": "Chrome", "Chromium": "Chromium"}
# The question's options (step 6's « navigateurs ») a browser answers.
_BROWSER_OPTIONS = {"Chrome": "Chrome", "Chromium": "Chrome", "Firefox": "Firefox", "Edge": "Edge", "Safari": "Safari"}

_MAJOR = re.compile(r"(\d{1,4})(?:[._]|$)")
_SAFARI_VERSION = re.compile(r"Version/(\d{1,4})[.\s]")
_LONGEST = 512  # characters of a header read (a User-Agent, a hint): more is not a browser's
_BRAND = re.compile(r'"([^"]*)"\s*;\s*v="([^"]*)"')


def read(user_agent: str, hints: Mapping[str, str], ip: str | None) -> dict:
    """What a browser's request says of its device: {device, system, system_version, browser,
    browser_version, ip, source}; a value nobody can tell is None (never guessed).

    Frozen User-Agents say nothing true of the version: Chrome on Android says « Android 10; K »
    whatever the version, every Windows says « Windows NT 10.0 » (10 or 11), macOS browsers say
    10.15.7; the version then comes from Sec-CH-UA-Platform-Version or is left unknown. Windows'
    platform version 13 and above is Windows 11
    (https://learn.microsoft.com/en-us/microsoft-edge/web-platform/how-to-detect-win11)."""
    hints = {name.lower(): value[:_LONGEST] for name, value in hints.items()}  # header names are case-insensitive
    user_agent = (user_agent or "")[:_LONGEST]
    parsed = parse(user_agent)
    family = parsed.os.family if parsed.os else ""
    system = _SYSTEMS.get(family)
    version = _major(parsed.os.major) if parsed.os else None
    if (system == "Android" and " K)" in user_agent) or (system in ("Windows", "macOS") and version == "10") or system == "ChromeOS":
        version = None  # a frozen User-Agent (« Android 10; K », « Windows NT 10.0 », « Mac OS X 10_15_7 »)
    if system == "iOS" and version == "18" and parsed.os.minor in ("6", "7"):
        # From iOS 26, every iOS User-Agent says 18_6 (or 18_7); Safari's own Version/ then tells the
        # system's version (Safari 26 ships with iOS 26). Else it cannot be told: asked by voice.
        safari = _SAFARI_VERSION.search(user_agent)
        version = safari.group(1) if safari and int(safari.group(1)) >= 26 else None if safari is None else version
    device_family = parsed.device.family if parsed.device else ""
    browser_family = parsed.user_agent.family if parsed.user_agent else ""
    browser = _BROWSERS.get(browser_family, browser_family if browser_family and browser_family != "Other" else None)
    browser_version = _major(parsed.user_agent.major) if parsed.user_agent and browser else None
    mobile = "Mobile" in user_agent or device_family in ("iPhone", "iPod")
    source = "user-agent"

    platform = _unquote(_hint(hints, "Sec-CH-UA-Platform"))
    if platform == "Android" and system in ("Linux", "macOS") and browser in _CHROMIUM_FAMILY:
        # Chrome's « version pour ordinateur » (the default on large Android tablets) writes a desktop
        # User-Agent but tells its real platform in the hints.
        system, version, mobile = "Android", None, False
    # Hints count only when they agree with the User-Agent on the system (a browser whose User-Agent
    # was changed by hand, or by a device emulator, sends its own platform's hints).
    if platform and _PLATFORMS.get(platform) == system and browser in _CHROMIUM_FAMILY | {None}:
        source = "client hints"
        major = _major(_unquote(_hint(hints, "Sec-CH-UA-Platform-Version")))
        if major and system == "Windows":
            version = "11" if int(major) >= 13 else "10" if int(major) >= 1 else None
        elif major and system in ("macOS", "Android", "iOS") and major != "0":
            version = major
        brands = dict(_BRAND.findall(_hint(hints, "Sec-CH-UA-Full-Version-List") or _hint(hints, "Sec-CH-UA") or ""))
        named = next(((ours, _major(brands[brand])) for brand, ours in _BRANDS.items() if brand in brands), None)
        if named is not None and named[1]:
            browser, browser_version = named
        mobile_hint = _hint(hints, "Sec-CH-UA-Mobile")
        if mobile_hint in ("?0", "?1"):
            mobile = mobile_hint == "?1"
    if system in _MOBILE:
        tablet = device_family == "iPad" or "Tablet" in (parsed.device.brand or "" if parsed.device else "") or \
            (system == "Android" and not mobile)  # Android tablets' browsers leave « Mobile » out
        device = "tablette" if tablet else "téléphone"
    elif system is not None:
        device = "ordinateur"
    else:
        device = None
    return {"device": device, "system": system, "system_version": version, "browser": browser, "browser_version": browser_version,
            "ip": public(ip), "source": source,
            # An iPad's Safari writes a Mac's User-Agent and sends no hints: only its owner can tell.
            "maybe_ipad": system == "macOS" and browser == "Safari" and source == "user-agent"}


def as_ipad(facts: Mapping) -> dict:
    """Facts a Mac's User-Agent gave, told by the caller to be an iPad's (iPadOS: version unknown)."""
    return {**facts, "device": "tablette", "system": "iOS", "system_version": None, "maybe_ipad": False}


def public(ip: str | None) -> str | None:
    """The address if it is a public one; None for a private or local one (the server then sees its
    proxy's address, not the caller's: IVR_TRUSTED_PROXIES is not set right)."""
    try:
        return ip if ip and ipaddress.ip_address(ip).is_global else None
    except ValueError:
        return None


def _major(version: str | None) -> str | None:
    """A version's first number, if it is one (1 to 4 digits, leading zeros dropped)."""
    found = _MAJOR.match(version or "")
    return str(int(found.group(1))) if found else None


def kind(facts: Mapping) -> str | None:
    """Which of the call's devices these facts describe: a phone or tablet, or a computer (whatever
    page sent them: a guide opened on a computer describes the computer)."""
    if facts.get("device") in ("téléphone", "tablette"):
        return PHONE
    if facts.get("device") == "ordinateur":
        return COMPUTER
    return None


def answers(devices: Mapping[str, Mapping]) -> dict[str, str]:
    """The step-6 answers the devices give (field → answer, as the flow's choices name them)."""
    given: dict[str, str] = {}
    phone, computer = devices.get(PHONE) or {}, devices.get(COMPUTER) or {}
    if phone.get("device"):
        given["support"] = phone["device"]
    if phone.get("system"):
        given["systeme_mobile"] = phone["system"]
        if phone.get("system_version"):
            given["version_systeme_mobile"] = phone["system_version"]
    if computer.get("system"):
        given["systeme_ordinateur"] = computer["system"]
        if computer.get("system_version"):
            given["version_systeme_ordinateur"] = computer["system_version"]
    if computer.get("browser"):
        given["navigateurs"] = _BROWSER_OPTIONS.get(computer["browser"], "autre")
    return given


def described(facts: Mapping) -> list[tuple[str, str]]:
    """The facts as the caller sees them before sending, and the agent after: (label, value)."""
    def with_version(name, version):
        return f"{name} {version}" if name and version else name or "inconnu"

    return [("Appareil", facts.get("device") or "inconnu"),
            ("Système", with_version(facts.get("system"), facts.get("system_version")) +
             ("" if facts.get("system_version") or not facts.get("system") else " (version inconnue)")),
            ("Navigateur", with_version(facts.get("browser"), facts.get("browser_version"))),
            ("Adresse IP publique (celle de la connexion internet)", facts.get("ip") or "non visible")]


def _hint(hints: Mapping[str, str], name: str) -> str | None:
    return hints.get(name.lower())


def _unquote(value: str | None) -> str | None:
    return value.strip().strip('"') if value else value
