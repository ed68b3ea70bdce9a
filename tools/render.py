"""Screenshot lessons in headless Chromium, as a student sees them.

    python tools/render.py lessons/00_tour.py [--profile fast] [--out out/render]
    python tools/render.py out/01_pretraining.ipynb     # already executed
    python tools/render.py site/html/01_pretraining.html  # a built site's page

A lesson's .py is executed first (`aelab run`, in the chosen profile); an
.ipynb that `aelab run` wrote is rendered as it is. Needs Debian's chromium
and the `render` extra (playwright). Writes <out>/<lesson>.html and
<out>/<lesson>-<k>.png (page slices of 1600 px).
"""
import argparse
import subprocess
import sys
from pathlib import Path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("lessons", nargs="+")
    parser.add_argument("--profile", default="fast")
    parser.add_argument("--out", default="out/render")
    parser.add_argument("--width", type=int, default=1100)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    for lesson in args.lessons:
        stem = Path(lesson).stem
        nb = Path(lesson)
        if nb.suffix == ".py":  # execute the lesson's text first
            subprocess.run([sys.executable, "-m", "aelab.cli", "run", str(nb),
                            "--profile", args.profile, "--out", str(out)], check=True)
            nb = out / f"{stem}.ipynb"
        if nb.suffix == ".html":  # a page of `aelab site`: as it is
            html = nb.resolve()
        else:
            subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to",
                            "html", f"--output-dir={out}", str(nb)], check=True)
            html = (out / f"{stem}.html").resolve()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"])
            page = browser.new_page(viewport={"width": args.width, "height": 1600})
            page.goto(html.as_uri())
            page.wait_for_timeout(1500)
            height = page.evaluate("document.body.scrollHeight")
            for k, top in enumerate(range(0, height, 1600)):
                page.screenshot(path=str(out / f"{stem}-{k:02d}.png"),
                                clip={"x": 0, "y": top, "width": args.width,
                                      "height": min(1600, height - top)},
                                full_page=True)
            browser.close()
        print(f"{stem}: {height} px -> {out}/{stem}-*.png")


if __name__ == "__main__":
    main()
