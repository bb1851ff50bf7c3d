"""Time the flow loader (parse + every check + lint) on generated flows of growing size.

    python bench/flow_loader.py            # 250, 500, 1,000 and 2,000 nodes
    python bench/flow_loader.py 5000       # one size of your own
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ivr.call.library import load_bundle  # noqa: E402
from ivr.supervisor.lint import lint  # noqa: E402

SHIPPED_PROMPTS = (ROOT / "prompts" / "fr-FR.yaml").read_text(encoding="utf-8")


def generate(directory: Path, nodes: int) -> tuple[Path, Path]:
    """A flow of `nodes` menus in a chain (1 → next, 2 → the end), with one sentence each."""
    lines = ["start: q0", "nodes:"]
    prompts = [SHIPPED_PROMPTS, "genere:"]
    for number in range(nodes - 1):
        following = f"q{number + 1}" if number < nodes - 2 else "fin"
        lines += [f"  q{number}:", "    type: menu", f"    prompt: genere.q{number}", "    field: reponse",
                  "    choices:", f'      "1": {{answer: oui, goto: {following}}}', '      "2": {answer: non, goto: fin}']
        prompts.append(f"  q{number}: Question numéro {number}. Si oui, tapez 1. Sinon, tapez 2.")
    lines += ["  fin:", "    type: end", "    prompt: fin.resolu", "    outcome: solved"]
    flow = directory / f"flow-{nodes}.yaml"
    flow.write_text("\n".join(lines) + "\n", encoding="utf-8")
    prompt_dir = directory / f"prompts-{nodes}"
    prompt_dir.mkdir()
    (prompt_dir / "fr-FR.yaml").write_text("\n".join(prompts) + "\n", encoding="utf-8")
    return flow, prompt_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", nargs="*", type=int, metavar="NODES", help="flow sizes to time (default: 250 500 1000 2000)")
    sizes = parser.parse_args(argv).sizes or [250, 500, 1000, 2000]
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'nodes':>6} {'load (ms)':>10} {'+ lint (ms)':>12} {'µs/node':>8}")
        for size in sizes:
            flow, prompt_dir = generate(Path(tmp), size)
            loads, lints = [], []
            for _ in range(5):
                began = time.perf_counter()
                bundle, problems = load_bundle(flow, prompt_dir)
                loads.append(time.perf_counter() - began)
                assert bundle is not None, problems[:3]
                began = time.perf_counter()
                lint(bundle.flow, bundle.prompts)
                lints.append(time.perf_counter() - began)
            load, lint_time = statistics.median(loads), statistics.median(lints)
            print(f"{size:>6} {load * 1000:>10.1f} {lint_time * 1000:>12.1f} {(load + lint_time) / size * 1e6:>8.0f}")


if __name__ == "__main__":
    main()
