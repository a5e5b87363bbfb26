"""Files a module reads while its top-level code runs (a JSON config, a text file, a template read with ``open``)
are recorded; saving one re-runs exactly the statements that read it (and their readers), as one reload.

References are taken before the save and checked after; results are compared with what a fresh import of the
module gives with the new file. No fixed sleeps: reports are waited for with a timeout."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import hotswap
from conftest import wait_until

QUIET = 0.3  # how long "no reload happens" is watched for

CONFIG_MODULE = """\
    import json, os

    HERE = os.path.dirname(__file__)
    calls = []                                     # module state: must survive

    with open(os.path.join(HERE, "{config}")) as f:
        CONFIG = json.load(f)

    LIMIT = CONFIG["limit"] * 10                   # reads a name the config statement rebinds

    def limit():
        calls.append(1)
        return LIMIT

    def greeting():
        return CONFIG["greeting"]
    """


def fresh_import(root: Path, name: str) -> dict:
    """What a fresh interpreter's import of ``name`` from ``root`` gives (for comparison)."""
    code = f"import json, sys; sys.path.insert(0, {str(root)!r}); import {name} as m; " \
           "print(json.dumps({'CONFIG': m.CONFIG, 'LIMIT': m.LIMIT}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = (tmp_path / "proj").resolve()
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    names = []

    def load(source: str, **files: str):
        name = f"dmod_{uuid.uuid4().hex[:10]}"
        for file, text in files.items():
            (root / file.replace("__", ".")).write_text(text)
        config = next((f.replace("__", ".") for f in files), "")
        (root / f"{name}.py").write_text(textwrap.dedent(source).replace("{config}", config))
        importlib.invalidate_caches()
        names.append(name)
        return importlib.import_module(name)

    load.root = root  # type: ignore[attr-defined]
    yield load
    for name in names:
        sys.modules.pop(name, None)


def test_a_json_config_read_at_import_is_recorded_with_its_reader(project):
    module = project(CONFIG_MODULE, config__json='{"limit": 1, "greeting": "hi"}')
    config = str(project.root / "config.json")
    assert hotswap.data_files_read(module) == {config: (module.__name__,)}
    assert config in hotswap.data_files_read()


def test_saving_the_json_reruns_its_statements_and_their_readers_through_references(project, start):
    module = project(CONFIG_MODULE, config__json='{"limit": 1, "greeting": "hi"}')
    limit, greeting = module.limit, module.greeting          # references taken before the save
    calls = module.calls
    assert limit() == 10 and greeting() == "hi"
    reloader = start(str(project.root))
    assert reloader.data_files == [str(project.root / "config.json")]
    (project.root / "config.json").write_text('{"limit": 7, "greeting": "hello"}')
    report = reloader.wait_for_reload(timeout=10)
    assert report is not None and report.ok, report
    assert report.data_files == (str(project.root / "config.json"),)
    assert report.executed == 2                               # the `with` block and `LIMIT = ...`, nothing else
    assert "config.json saved" in report.summary()
    fresh = fresh_import(project.root, module.__name__)
    assert (module.CONFIG, module.LIMIT) == (fresh["CONFIG"], fresh["LIMIT"]) == ({"limit": 7, "greeting": "hello"},
                                                                                 70)
    assert limit() == 70 and greeting() == "hello"
    assert module.calls is calls and len(calls) == 2          # state kept: `calls = []` did not run again


def test_a_broken_json_gives_a_failed_report_and_keeps_the_old_values(project, start):
    module = project(CONFIG_MODULE, config__json='{"limit": 1, "greeting": "hi"}')
    config_before, limit = module.CONFIG, module.limit
    reloader = start(str(project.root))
    (project.root / "config.json").write_text('{"limit": 2, ')
    report = reloader.wait_for_reload(timeout=10)
    assert report is not None and not report.ok
    assert report.error_type == "json.decoder.JSONDecodeError"
    assert report.data_files == (str(project.root / "config.json"),)
    assert module.CONFIG is config_before and module.LIMIT == 10 and limit() == 10
    # The next good save applies.
    (project.root / "config.json").write_text('{"limit": 3, "greeting": "hi"}')
    report = reloader.wait_for_reload(timeout=10)
    assert report is not None and report.ok and limit() == 30


def test_a_plain_text_file_and_a_template_read_with_open(project, start):
    module = project(
        """\
        import os
        from jinja2 import Template

        HERE = os.path.dirname(__file__)
        with open(os.path.join(HERE, "{config}")) as page:
            PAGE = Template(page.read())
        with open(os.path.join(HERE, "names.txt"), "rb") as names:
            NAMES = names.read().decode().split()

        def render(name):
            return PAGE.render(name=name)
        """,
        page__html="<p>Hello {{ name }}</p>",
        names__txt="",
    )
    assert module.render("ann") == "<p>Hello ann</p>"
    render = module.render
    reloader = start(str(project.root))
    (project.root / "page.html").write_text("<h1>Bye {{ name }}</h1>")
    report = reloader.wait_for_reload(timeout=10)
    assert report is not None and report.ok and report.executed == 1, report
    assert render("ann") == "<h1>Bye ann</h1>"
    (project.root / "names.txt").write_text("ann bob")
    report = reloader.wait_for_reload(timeout=10)
    assert report is not None and report.ok and report.executed == 1, report
    assert module.NAMES == ["ann", "bob"]


def test_a_file_read_by_a_function_at_call_time_is_not_tracked(project, start):
    module = project(
        """\
        import os
        HERE = os.path.dirname(__file__)

        def load():
            with open(os.path.join(HERE, "{config}")) as f:
                return f.read()
        """,
        data__txt="one",
    )
    assert module.load() == "one"                # read after the import: not recorded
    assert hotswap.data_files_read(module) == {}
    reloader = start(str(project.root))
    assert reloader.data_files == []
    (project.root / "data.txt").write_text("two")
    assert reloader.wait_for_reload(timeout=QUIET) is None
    assert module.load() == "two"


def test_files_opened_for_writing_are_not_tracked(project):
    module = project(
        """\
        import os
        HERE = os.path.dirname(__file__)
        with open(os.path.join(HERE, "{config}"), "w") as f:
            f.write("written")
        with open(os.path.join(HERE, "{config}"), "a") as f:
            f.write("!")
        fd = os.open(os.path.join(HERE, "{config}"), os.O_WRONLY)
        os.close(fd)
        """,
        out__log="",
    )
    assert hotswap.data_files_read(module) == {}
    assert (project.root / "out.log").read_text() == "written!"


def test_a_statement_calling_a_helper_that_reads_is_the_reader(project):
    """The statement of the module that was running when the file was opened is recorded, however deep the call."""
    module = project(
        """\
        import pathlib

        def read(name):
            return (pathlib.Path(__file__).parent / name).read_text()

        X = 1
        VALUE = read("{config}").strip()
        """,
        value__txt="a",
    )
    report = hotswap.reload(module, data_files=[project.root / "value.txt"])
    assert report.ok and report.executed == 1
    (project.root / "value.txt").write_text("b")
    report = hotswap.reload(module, data_files=[str(project.root / "value.txt")])
    assert report.ok and report.executed == 1 and module.VALUE == "b"


def test_a_reload_records_what_its_statements_read(project):
    """A statement that starts reading a file in a reload is recorded; one that stops is forgotten."""
    module = project("X = 1\n", other__txt="first")
    other = str(project.root / "other.txt")
    assert hotswap.data_files_read(module) == {}
    path = Path(module.__file__)
    path.write_text("import pathlib\nX = pathlib.Path(__file__).with_name('other.txt').read_text()\n")
    assert hotswap.reload(module).ok and module.X == "first"
    assert hotswap.data_files_read(module) == {other: (module.__name__,)}
    (project.root / "other.txt").write_text("second")
    assert hotswap.reload(module, data_files=[other]).ok and module.X == "second"
    path.write_text("X = 2\n")
    assert hotswap.reload(module).ok and module.X == 2
    assert hotswap.data_files_read(module) == {}


def test_a_class_attribute_read_from_a_file(project):
    module = project(
        """\
        import os

        class Settings:
            with open(os.path.join(os.path.dirname(__file__), "{config}")) as f:
                name = f.read()

            def hello(self):
                return "hello " + self.name
        """,
        name__txt="ann",
    )
    settings = module.Settings()
    cls = module.Settings
    (project.root / "name.txt").write_text("bob")
    report = hotswap.reload(module, data_files=[str(project.root / "name.txt")])
    assert report.ok, report.error
    assert module.Settings is cls and settings.hello() == "hello bob"


def test_across_modules_a_from_import_of_the_config_follows(project):
    module = project(CONFIG_MODULE, config__json='{"limit": 1, "greeting": "hi"}')
    user = project(f"from {module.__name__} import CONFIG, LIMIT\nDOUBLE = LIMIT * 2\n")
    (project.root / "config.json").write_text('{"limit": 4, "greeting": "hi"}')
    report = hotswap.reload(module, data_files=[str(project.root / "config.json")])
    assert report.ok and user.CONFIG == {"limit": 4, "greeting": "hi"} and user.DOUBLE == 80


def test_manual_apply_queues_a_data_file_save(project, start):
    module = project(CONFIG_MODULE, config__json='{"limit": 1, "greeting": "hi"}')
    reloader = start(str(project.root), apply="manual")
    (project.root / "config.json").write_text('{"limit": 5, "greeting": "hi"}')
    assert wait_until(lambda: reloader.pending == [module.__name__], timeout=10)
    assert module.LIMIT == 10
    reports = reloader.apply_pending()
    assert [r.ok for r in reports] == [True] and module.LIMIT == 50


def test_touching_the_file_does_nothing(project, start):
    module = project(CONFIG_MODULE, config__json='{"limit": 1, "greeting": "hi"}')
    reloader = start(str(project.root))
    os.utime(project.root / "config.json")
    (project.root / "config.json").write_text('{"limit": 1, "greeting": "hi"}')
    assert reloader.wait_for_reload(timeout=QUIET) is None
    assert module.LIMIT == 10


def test_a_file_outside_the_watched_path_is_watched_too(tmp_path, project, start):
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "settings.json").write_text('{"limit": 1}')
    settings = str(outside / "settings.json")
    module = project(f"import pathlib\nCONFIG = pathlib.Path({settings!r}).read_text()\n")
    reloader = start(str(project.root))
    assert reloader.data_files == [str(outside / "settings.json")]
    (outside / "settings.json").write_text('{"limit": 2}')
    report = reloader.wait_for_reload(timeout=10)
    assert report is not None and report.ok and module.CONFIG == '{"limit": 2}'


def test_a_file_opened_by_another_thread_during_the_import_is_not_tracked(project):
    module = project(
        """\
        import os, threading
        HERE = os.path.dirname(__file__)
        seen = []

        def read():
            with open(os.path.join(HERE, "{config}")) as f:
                seen.append(f.read())

        worker = threading.Thread(target=read)
        worker.start()
        worker.join()
        """,
        other__txt="x",
    )
    assert module.seen == ["x"]
    assert hotswap.data_files_read(module) == {}


def test_a_save_made_before_the_reloader_started_is_applied_when_it_starts(project, start):
    module = project(CONFIG_MODULE, config__json='{"limit": 1, "greeting": "hi"}')
    limit = module.limit
    (project.root / "config.json").write_text('{"limit": 6, "greeting": "hi"}')  # saved before anything watched it
    reloader = start(str(project.root))
    report = reloader.wait_for_reload(timeout=10)
    assert report is not None and report.ok and limit() == 60


def test_a_default_value_read_from_a_file_is_evaluated_again(project):
    module = project(
        """\
        import pathlib
        HERE = pathlib.Path(__file__).parent

        def greet(name, greeting=(HERE / "{config}").read_text().strip()):
            return f"{greeting} {name}"
        """,
        greeting__txt="hi",
    )
    greet = module.greet
    (project.root / "greeting.txt").write_text("hello")
    report = hotswap.reload(module, data_files=[str(project.root / "greeting.txt")])
    assert report.ok, report.error
    assert module.greet is greet and greet("ann") == "hello ann"
    # The body changes: the def is patched without evaluating its default again, and it stays the file's reader.
    path = Path(module.__file__)
    path.write_text(path.read_text().replace('return f"{greeting} {name}"', 'return f"{greeting}, {name}!"'))
    assert hotswap.reload(module).ok and greet("ann") == "hello, ann!"
    (project.root / "greeting.txt").write_text("hey")
    assert hotswap.reload(module, data_files=[str(project.root / "greeting.txt")]).ok
    assert greet("ann") == "hey, ann!"


def test_a_data_file_matching_include_is_reloaded_not_handed_to_on_other_file(project, start):
    """`hotswap run --include '*.json'` restarts the program for other files: a file read at import is re-run."""
    module = project(CONFIG_MODULE, config__json='{"limit": 1, "greeting": "hi"}')
    (project.root / "other.json").write_text("{}")
    others = []
    reloader = start(str(project.root), include=("*.py", "*.json"), on_other_file=others.append)
    (project.root / "config.json").write_text('{"limit": 2, "greeting": "hi"}')
    report = reloader.wait_for_reload(timeout=10)
    assert report is not None and report.ok and module.LIMIT == 20
    (project.root / "other.json").write_text('{"x": 1}')
    assert wait_until(lambda: others == [str(project.root / "other.json")], timeout=10)


def test_a_failure_inside_the_audit_hook_never_fails_the_programs_open(project, monkeypatch):
    from hotswap import _datafiles

    def broken(args):
        raise RuntimeError("bug in the recorder")

    monkeypatch.setattr(_datafiles, "_on_open", broken)
    module = project(CONFIG_MODULE, config__json='{"limit": 1, "greeting": "hi"}')  # opens inside a window
    assert module.LIMIT == 10
    assert hotswap.data_files_read(module) == {}
