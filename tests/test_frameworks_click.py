"""click and typer adapters against the real libraries: the group, the command and the typer app are taken before
the edit; afterwards they parse the new options as a fresh import of the new source does."""

from __future__ import annotations

import click
import typer
from click.testing import CliRunner
from typer.testing import CliRunner as TyperRunner

CLI = """\
import click

calls = []

@click.group()
def cli():
    pass

@cli.command()
@click.option("--name", default="world")
def hello(name):
    calls.append(name)
    click.echo(f"hello {name}")

@cli.command()
def other():
    click.echo("other")
"""

WITH_SHOUT = CLI.replace('@click.option("--name", default="world")\ndef hello(name):\n    calls.append(name)\n'
                         '    click.echo(f"hello {name}")',
                         '@click.option("--name", default="world")\n@click.option("--shout", is_flag=True)\n'
                         'def hello(name, shout):\n    calls.append(name)\n'
                         '    click.echo(f"hello {name}".upper() if shout else f"hello {name}")')


def run(command: click.Command, *args: str) -> str:
    result = CliRunner().invoke(command, list(args))
    return f"{result.exit_code}: {result.output.strip()}"


def test_a_new_option_takes_effect_on_the_group_and_command_taken_before(modules):
    module = modules.load(CLI)
    cli, hello = module.cli, module.hello
    assert run(cli, "hello", "--name", "a") == "0: hello a"
    assert run(cli, "hello", "--shout").startswith("2:"), "no such option yet"
    report = modules.edit(module, WITH_SHOUT)
    assert report.ok, report.error
    assert module.cli is cli and module.hello is hello and cli.commands["hello"] is hello
    assert run(cli, "hello", "--name", "a", "--shout") == "0: HELLO A"
    assert run(hello, "--shout") == "0: HELLO WORLD"
    assert run(cli, "other") == "0: other", "the group kept its other subcommands"
    fresh = modules.load(WITH_SHOUT)
    assert run(cli, "hello", "--help") == run(fresh.cli, "hello", "--help")
    assert module.calls == ["a", "a", "world"], "module state survived"


def test_an_option_removed_is_refused_again(modules):
    module = modules.load(WITH_SHOUT)
    cli = module.cli
    assert run(cli, "hello", "--shout") == "0: HELLO WORLD"
    assert modules.edit(module, CLI).ok
    assert run(cli, "hello", "--shout").startswith("2:")
    assert run(cli, "hello") == "0: hello world"


TYPER = """\
import typer

app = typer.Typer()

@app.command("hello")
def hello(name: str = "world"):
    print(f"hello {name}")

@app.command()
def other():
    print("other")
"""


def typer_run(app: typer.Typer, *args: str) -> str:
    result = TyperRunner().invoke(app, list(args))
    return f"{result.exit_code}: {result.output.strip()}"


def test_typer_renamed_command_and_new_option_follow_on_the_app_taken_before(modules):
    module = modules.load(TYPER)
    app = module.app
    assert typer_run(app, "hello", "--name", "a") == "0: hello a"
    new = TYPER.replace('@app.command("hello")\ndef hello(name: str = "world"):\n    print(f"hello {name}")',
                        '@app.command("greet")\ndef hello(name: str = "world", times: int = 1):\n'
                        '    print(" ".join([f"hello {name}"] * times))')
    report = modules.edit(module, new)
    assert report.ok, report.error
    assert typer_run(app, "greet", "--name", "a", "--times", "2") == "0: hello a hello a"
    assert typer_run(app, "hello").startswith("2:"), "the old command name is gone"
    assert typer_run(app, "other") == "0: other"
    assert len(app.registered_commands) == 2
    assert typer_run(app, "--help").replace(module.__name__, "") == \
        typer_run(modules.load(new).app, "--help").replace(module.__name__, "")
