"""The `aelab` command: lab, run, lessons, student, grade, data, cache, site, bench."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from aelab import runner, validate


def lessons_dir() -> Path:
    try:
        return runner.lessons_dir()
    except runner.LessonError as err:
        sys.exit(f"aelab: {err}, then run `aelab lab` again")


# What `aelab lab` adds to JupyterLab's settings, as the lowest-priority
# defaults (a user's own settings still win). JupyterLab 4 opens a .py file in
# the text editor on a double-click; jupytext's viewer opens a lesson's .py as
# the notebook it is. binder/postBuild installs the same file.
LAB_OVERRIDES = Path(__file__).with_name("lab-overrides.json")
LAB_EXTRA = 'pip install "aelab[lab]"  (in a clone: pip install -e ".[lab]")'


def missing_lab_modules() -> list[str]:
    """The modules `aelab lab` needs that are not installed (the `lab` extra)."""
    from importlib.util import find_spec

    return [m for m in ("jupyterlab", "jupytext", "ipykernel") if find_spec(m) is None]


def lab_settings_dir(into: Path) -> Path:
    """JupyterLab's application settings folder copied into `into`, with
    LAB_OVERRIDES merged under its overrides.json; the path to pass as
    --LabApp.app_settings_dir (JupyterLab reads its overrides from there)."""
    from jupyterlab.commands import get_app_dir

    app_dir = Path(get_app_dir())
    settings = into / "settings"
    if (app_dir / "settings").is_dir():
        shutil.copytree(app_dir / "settings", settings, dirs_exist_ok=True)
    settings.mkdir(parents=True, exist_ok=True)
    merged = json.loads(LAB_OVERRIDES.read_text())
    theirs = settings / "overrides.json"
    for plugin, values in (json.loads(theirs.read_text()) if theirs.exists()
                           else {}).items():
        merged.setdefault(plugin, {}).update(values)
    theirs.write_text(json.dumps(merged, indent=2))
    try:  # JupyterLab looks for the built app's metadata beside the settings
        (into / "static").symlink_to(app_dir / "static", target_is_directory=True)
    except OSError:
        pass
    return settings


def lab_command(extra, *, root: bool, settings_dir: Path | None = None,
                root_dir: Path | None = None) -> list[str]:
    """The JupyterLab command line. As root (a container's default user)
    JupyterLab refuses to start without --allow-root, so it is added there."""
    cmd = [sys.executable, "-m", "jupyterlab",
           f"--ServerApp.root_dir={root_dir or lessons_dir()}"]
    if settings_dir is not None:
        cmd.append(f"--LabApp.app_settings_dir={settings_dir}")
    cmd += extra
    if root and "--allow-root" not in extra:
        cmd.append("--allow-root")
    return cmd


def cmd_lab(args, extra) -> int:
    """JupyterLab on lessons/, with the chosen profile exported to the kernels."""
    missing = missing_lab_modules()
    if missing:
        print(f"aelab lab needs {', '.join(missing)}: {LAB_EXTRA}", file=sys.stderr)
        return 1
    os.environ["AELAB_PROFILE"] = args.profile
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    print(f"aelab: opening JupyterLab on {lessons_dir()} (profile {args.profile}); "
          "start with 00_tour" + ("; running as root, so with --allow-root" if root
                                  else ""), flush=True)
    with tempfile.TemporaryDirectory(prefix="aelab-lab-") as tmp:
        settings = lab_settings_dir(Path(tmp))
        lab = subprocess.Popen(lab_command(extra, root=root, settings_dir=settings))
        # A SIGTERM for `aelab lab` (a service manager, a test) stops JupyterLab
        # too, instead of leaving it running with its settings folder deleted.
        previous = signal.signal(signal.SIGTERM, lambda *_: lab.terminate())
        try:
            return lab.wait()
        except KeyboardInterrupt:  # Ctrl-C reached JupyterLab too: let it stop
            lab.terminate()
            lab.wait()
            return 130
        finally:
            signal.signal(signal.SIGTERM, previous)


def cmd_run(args, extra) -> int:
    if args.list:
        print("Lessons (aelab run NAME):")
        for name, path in runner.available().items():
            print(f"  {name:<14} lessons/{path.name}")
        return 0
    if not args.lesson:  # a usage error: one line, exit 2 as argparse's are
        print(f"aelab run: name a lesson: {', '.join(runner.available())} "
              "(aelab run --list), or a path to a lesson's .py", file=sys.stderr)
        return 2
    try:
        runner.run(args.lesson, profile=args.profile, out=args.out,
                   timeout=args.timeout, seeds=args.seeds)
    except runner.LessonError as err:
        print(f"aelab run: {err}", file=sys.stderr)
        return 1
    if args.verify and not runner.print_claims(args.out):
        print("aelab run: this lesson saved no claims table", file=sys.stderr)
        return 1
    return 0


def cmd_lessons(args, extra) -> int:
    written = runner.copy_lessons(args.dest, force=args.force)
    print(f"aelab: {len(written)} lesson files in {args.dest}/ (from "
          f"{runner.lessons_dir()}); open them with `aelab lab` there, or in "
          "JupyterLab or Colab")
    return 0


def cmd_student(args, extra) -> int:
    written = runner.student_copies(args.src, args.dest)
    print(f"aelab: {len(written)} student files (solutions removed) in {args.dest}/")
    return 0


def cmd_data(args, extra) -> int:
    from aelab import data

    if args.action == "build-embedded":
        from aelab.embed import build_embedded

        build_embedded(args.out)
        return 0
    rows = data.available()
    print(f"{'dataset':<14} {'split':<6} {'images':>8}  source")
    for r in rows:
        print(f"{r['name']:<14} {r['split']:<6} {r['num_images']:>8,}  "
              f"{r['source']}: {r['location']}")
    print(f"\nData directory (AELAB_DATA): {data.data_dir()}\n"
          "Full datasets: run once online (torchvision downloads into the data directory),"
          "\nor copy torchvision-format files there; Fashion-MNIST offline: "
          "`apt-get install dataset-fashion-mnist`.")
    return 0


def cmd_cache(args, extra) -> int:
    from aelab import cache_archive

    if args.action == "import":
        got = cache_archive.import_(args.file)
        for line in got["refused"]:
            print(f"aelab cache import: refused {line}", file=sys.stderr)
        print(f"aelab cache import: {got['added']} entries added, {got['present']} "
              f"already there, {len(got['refused'])} refused; lessons now load these "
              "models instead of training them")
        return 1 if got["refused"] else 0
    if args.lesson:  # train once, into a fresh cache, and export just that
        with tempfile.TemporaryDirectory(prefix="aelab-export-") as fresh:
            runner.run(args.lesson, profile=args.profile, out=Path(fresh) / "run-out",
                       seeds=args.seeds, cache=fresh)
            count = cache_archive.export(args.file, Path(fresh))
    else:
        count = cache_archive.export(args.file)
    print(f"aelab cache export: {count} entries -> {args.file}; students run "
          f"`aelab cache import {Path(args.file).name}` (or its URL)")
    return 0


def cmd_bench(args, extra) -> int:
    from aelab.bench import main as bench_main

    bench_main(quick=args.quick, out=args.out)
    return 0


def cmd_grade(args, extra) -> int:
    from aelab.grade import grade

    rows = grade(args.notebooks, out=args.out, timeout=args.timeout,
                 notebook_timeout=args.notebook_timeout, max_disk_mb=args.max_disk_mb)
    return 0 if rows else 1


def cmd_site(args, extra) -> int:
    from aelab import site

    try:
        runs = args.runs or site.run_lessons(args.out, profile=args.profile,
                                             lessons=args.lessons or None)
        built = site.build(runs, args.out)
    except site.SiteError as err:
        print(f"aelab site: {err}", file=sys.stderr)
        return 1
    print(f"aelab site: {len(built['pages'])} lesson pages; open {built['index']}")
    return 1 if args.strict and built["missing_alt"] else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aelab", description="Lessons on autoencoders and unsupervised pretraining.")
    from aelab import __version__

    parser.add_argument("--version", action="version", version=f"aelab {__version__}",
                        help="print aelab's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="aelab COMMAND --help: its options")
    profiles = validate.PROFILES  # default None: AELAB_PROFILE, checked in main
    profile_help = ("fast (seconds), classroom (minutes on a laptop) or paper "
                    "(a GPU); default: AELAB_PROFILE, else classroom")

    lab = sub.add_parser("lab", help="open JupyterLab on the lessons (extra args go to it)")
    lab.add_argument("--profile", choices=profiles, default=None, help=profile_help)
    lab.set_defaults(func=cmd_lab)

    run = sub.add_parser("run", help="run a lesson's text headless (its experiment)")
    run.add_argument("lesson", nargs="?",
                     help="a lesson's name (see --list) or a path to its .py")
    run.add_argument("--list", action="store_true", help="list the lessons")
    run.add_argument("--profile", choices=profiles, default=None, help=profile_help)
    run.add_argument("--verify", action="store_true",
                     help="print each claim of the paper with REPRODUCED / NOT REPRODUCED")
    run.add_argument("--out", default="out",
                     help="folder for the executed notebook, figures and tables")
    run.add_argument("--seeds", default=None, metavar="SPEC",
                     help="replace the lesson's seeds: 5-9, 5,6,7 or 0-2,7 (sets "
                          "AELAB_SEEDS), to rerun a study on seeds nobody tuned on")
    run.add_argument("--timeout", type=float, default=None,
                     help="stop a cell that runs longer than this many seconds")
    run.set_defaults(func=cmd_run)

    lessons = sub.add_parser("lessons", help="copy the lessons (.py and .ipynb) "
                             "out of the installed package into a folder")
    lessons.add_argument("dest", help="the folder to copy them into")
    lessons.add_argument("--force", action="store_true",
                         help="overwrite lesson files already in that folder")
    lessons.set_defaults(func=cmd_lessons)

    student = sub.add_parser("student", help="student copies: solution cells removed")
    student.add_argument("src", help="lessons/ or one lesson's .py")
    student.add_argument("dest", help="folder for the student .py and .ipynb")
    student.set_defaults(func=cmd_student)

    grade = sub.add_parser("grade", help="run the exercise checks over a class's "
                           "notebooks: one row per notebook and exercise")
    grade.add_argument("notebooks", nargs="+",
                       help="submitted .ipynb (or .py) files, or folders of them")
    grade.add_argument("--out", default=None, help="also write the rows to this CSV")
    grade.add_argument("--timeout", type=float, default=60,
                       help="seconds a cell or a check may run (default 60)")
    grade.add_argument("--notebook-timeout", type=float, default=300,
                       help="seconds for all of a notebook's cells and its checks "
                       "(default 300)")
    grade.add_argument("--max-disk-mb", type=float, default=1000,
                       help="the most a notebook may write into its own folder, in MB "
                       "(default 1000); past it, its kernel is stopped and its rows "
                       "say so")
    grade.set_defaults(func=cmd_grade)

    data = sub.add_parser("data", help="which datasets are available offline, from where")
    data.add_argument("action", nargs="?", choices=("list", "build-embedded"),
                      default="list", help="list (the default): what loads offline; "
                      "build-embedded: rebuild data/*.npz byte for byte")
    data.add_argument("--out", default=None, help="with build-embedded: output folder")
    data.set_defaults(func=cmd_data)

    cache = sub.add_parser("cache", help="a warm cache for a class: export the trained "
                           "models to a zip, import it")
    cache.add_argument("action", choices=("export", "import"),
                       help="export: zip the cache (or, with --lesson, a fresh run's); "
                       "import: add a zip's entries (a path or an http(s) URL)")
    cache.add_argument("file", help="the zip to write (export) or read (import)")
    cache.add_argument("--lesson", default=None,
                       help="export: run this lesson first, into a fresh cache, and "
                       "export only what it trained")
    cache.add_argument("--profile", choices=profiles, default=None,
                       help="with --lesson: " + profile_help)
    cache.add_argument("--seeds", default=None,
                       help="with --lesson: the seeds, as `aelab run --seeds` takes them")
    cache.set_defaults(func=cmd_cache)

    site = sub.add_parser("site", help="a static course site (HTML) from the executed "
                          "lessons, solutions collapsed")
    site.add_argument("--out", default="site",
                      help="folder for the site (OUT/html/index.html) and, without "
                      "--from, the lesson runs (OUT/runs/NAME); default: site")
    site.add_argument("--from", dest="runs", nargs="+", default=None, metavar="FOLDER",
                      help="build from lessons executed already (`aelab run LESSON "
                      "--out FOLDER/LESSON`; one folder or several) instead of "
                      "running them now")
    site.add_argument("--profile", choices=profiles, default=None,
                      help="without --from: " + profile_help)
    site.add_argument("--lessons", nargs="+", default=None, metavar="NAME",
                      help="without --from: only these lessons (default: all)")
    site.add_argument("--strict", action="store_true",
                      help="exit 1 when a figure has no alt text")
    site.set_defaults(func=cmd_site)

    bench = sub.add_parser("bench", help="training speed: aelab's loop vs a naive one")
    bench.add_argument("--quick", action="store_true", help="fewer images (a smoke test)")
    bench.add_argument("--out", default=None, help="append the table to this markdown file")
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv=None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    if extra and args.command != "lab":
        build_parser().error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if getattr(args, "profile", "") is None:  # AELAB_PROFILE, else classroom
            args.profile = validate.profile()
        return args.func(args, extra) or 0
    except ValueError as err:  # a bad argument or setting: a usage error
        print(f"aelab: {err}", file=sys.stderr)
        return 2
    except (OSError, runner.LessonError) as err:  # it failed: one line
        print(f"aelab: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
