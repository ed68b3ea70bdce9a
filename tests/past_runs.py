"""Find Markdown sentences of a lesson that quote a measured number from a
past run (the reading must print such numbers from this run instead)."""
import re

import jupytext

# a measured-looking number: a decimal, a percentage, "N of M", a duration
NUMBER = re.compile(r"\d+\.\d+|\d+(\.\d+)?\s?%|\b\d+ of (the )?\d+\b|"
                    r"\b\d+ min( \d+ s)?\b|\b\d+(\.\d+)? ?(dB|points?)\b|[<>≈~]\s?\d|→\s?\d")
# words that say the number came from running this study
RUN = re.compile(r"\b(we ran|when we ran|our runs?|this run|that run|a fresh run|"
                 r"the last run|in our|we (got|measured|found|saw|obtained)|came out|"
                 r"(was|were) measured|measured here|in (the|a) (classroom|fast) "
                 r"(profile|run)|runs? (of|in) the classroom|reproduced in|of \d+ runs|"
                 r"in \d+ of \d+)\b", re.IGNORECASE)
# sentences about the paper's own figures are allowed
PAPER = re.compile(r"\b(paper|papers|table|fig\.?|figure|authors?|reports?|reported|"
                   r"they|their|barletta|alberti|dong|erhan|zhang)\b", re.IGNORECASE)


def paragraphs(text: str) -> list[str]:
    """Paragraphs and bullets: a run quoted in one sentence ("When we ran the
    classroom profile, ...") covers the numbers of the next ones."""
    text = re.sub(r"`[^`]*`", "", text)  # code spans: settings and commands, not results
    return [p.strip() for p in re.split(r"\n\s*\n|\n\s*[*-]\s+|^\s*[*-]\s+", text)
            if p.strip()]


def quotes_a_run(paragraph: str) -> bool:
    """A paragraph that says it reports a run, with a measured-looking number
    in a sentence that is not about the paper's own figures."""
    if not RUN.search(paragraph):
        return False
    return any(NUMBER.search(s) and not PAPER.search(s)
               for s in re.split(r"(?<=[.!?;])\s+", paragraph))


def past_run_quotes(path) -> list[str]:
    notebook = jupytext.read(path)
    return [p for cell in notebook.cells if cell.cell_type == "markdown"
            for p in paragraphs(cell.source) if quotes_a_run(p)]
