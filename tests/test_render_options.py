"""engine/options.py `RenderOptions` is the one owner of the render options: the command line's flags (`render`,
`score`, `client render`), the bridge protocol's render fields and the timeline batch's options are derived from it,
so each option has one name, one default and one range everywhere, and an out-of-range value is refused the same
way (error type and message) by the command line, the protocol and the engine."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from filmscore.bridge import protocol as P
from filmscore.bridge.cli import build_parser
from filmscore.bridge.cli.common import options_from_args
from filmscore.bridge.timelines.batch import ScoreOptions
from filmscore.engine.errors import FilmscoreError
from filmscore.engine.options import PLAN, RENDER, RenderOptions, option_field, option_fields, option_names
from filmscore.engine.request import RenderRequest

# The words each command needs besides the options, so that its parser reaches them.
COMMANDS = {"render": ["render", "-o", "x.wav"], "score": ["score", "t.otio", "-o", "out"],
            "client render": ["client", "render", "--output", "x.wav"]}


def _subparser(parser: argparse.ArgumentParser, *path: str) -> argparse.ArgumentParser:
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def _flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


def _out_of_range(f) -> list:
    lo, hi = f.meta.range
    return [lo - 1, hi + 1]


def _cli_text(value) -> str:
    return str(value)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_option_is_a_flag_with_the_options_default(command):
    parser = build_parser()
    sub = _subparser(parser, *command.split())
    flags = _flags(sub)
    for f in option_fields():
        assert f.flag in flags, f"{command} has no {f.flag}"
        assert flags[f.flag].dest == f.name
        for alias in f.meta.aliases:  # an old spelling: the same field, hidden
            assert flags[alias].dest == f.name and flags[alias].help == argparse.SUPPRESS
    args = parser.parse_args(COMMANDS[command])
    if command != "client render":  # the client sends only what is given: the server's defaults are the same
        assert options_from_args(args) == RenderOptions()


def test_help_shows_each_options_range_and_default():
    for command in ("render", "score"):
        text = _subparser(build_parser(), command).format_help()
        assert "--guidance" not in text and "--lufs" not in text and "--loudness" not in text
        for f in option_fields():
            assert f.flag in text
    helps = {s: a.help for s, a in _flags(_subparser(build_parser(), "render")).items()}
    assert "1..1000" in helps["--steps"] and "(default: 25)" in helps["--steps"]
    assert "40..200 BPM" in helps["--tempo"] and "-70..0 LUFS" in helps["--target-lufs"]


def test_old_spellings_still_work():
    parser = build_parser()
    a = parser.parse_args(COMMANDS["render"] + ["--guidance", "1.5", "--lufs", "-16"])
    b = parser.parse_args(COMMANDS["score"] + ["--picture-guidance", "1.5", "--loudness", "streaming"])
    assert options_from_args(a) == options_from_args(b) == RenderOptions(picture_guidance=1.5, target_lufs=-16.0)


def test_the_protocol_takes_each_option_with_its_type_and_default():
    assert issubclass(P.RenderParams, RenderOptions)
    assert P.RenderParams.from_content({"output": "/o.wav"}).options() == RenderOptions()
    given = {"seed": 9, "steps": 7, "scheduler": "ddim", "picture_guidance": 1, "control_guidance": 2.5,
             "control_strength": 0.5, "picture_dynamics": 0.25, "sample_rate": 44100, "target_lufs": -16,
             "backend": "torch", "vocoder": "griffin-lim", "tempo_bpm": 96, "key": "E minor", "energy": 0.2,
             "valence": 0.3, "tension": 0.4, "orchestration": "dark", "free_timing": True, "style": "bach"}
    # a value for every option (a new option must be added here, or this fails: it checks the protocol takes it)
    missing = [f.name for f in option_fields() if f.name not in given]
    given.update({n: _a_value(option_field(n)) for n in missing})
    p = P.RenderParams.from_content({"output": "/o.wav", **given})
    for name, value in given.items():
        assert getattr(p, name) == value and type(getattr(p, name)) is option_field(name).kind
    assert P.RenderParams.from_content(p.to_content()) == p
    cli = options_from_args(build_parser().parse_args(
        COMMANDS["render"] + [a for n, v in given.items() for a in _cli_words(n, v)]))
    assert cli == p.options()  # the same values through the command line


def _a_value(f):
    if f.meta.choices:
        return f.meta.choices[-1]
    if f.meta.range:
        return f.kind(f.meta.range[1])
    return {bool: True, str: "x", int: 1, float: 1.0}[f.kind]


def _cli_words(name: str, value) -> list[str]:
    f = option_field(name)
    if f.kind is bool:
        return [f.flag] if value else []
    return [f.flag, str(value)]


@pytest.mark.parametrize("name", [f.name for f in option_fields() if f.meta.range or f.meta.choices])
def test_a_bad_value_is_refused_the_same_way_everywhere(name):
    f = option_field(name)
    bad = _out_of_range(f) if f.meta.range else ["nonesuch"]
    for value in bad:
        value = f.kind(value)
        with pytest.raises(FilmscoreError) as from_cli:
            options_from_args(build_parser().parse_args(COMMANDS["render"] + [f.flag, _cli_text(value)]))
        with pytest.raises(FilmscoreError) as from_score:
            options_from_args(build_parser().parse_args(COMMANDS["score"] + [f.flag, _cli_text(value)]))
        with pytest.raises(FilmscoreError) as from_protocol:
            P.RenderParams.from_content({"output": "/o.wav", name: value})
        with pytest.raises(FilmscoreError) as from_engine:
            RenderRequest(Path("x.wav"), duration_s=2.0, **{name: value}).validate()
        errors = [from_cli.value, from_score.value, from_protocol.value, from_engine.value]
        assert {type(e) for e in errors} == {f.meta.error}, errors
        assert len({str(e) for e in errors}) == 1, errors
        assert name in str(errors[0])


def test_hello_advertises_the_options_as_the_protocol_takes_them():
    schema = P.render_options_schema()
    assert [o["name"] for o in schema] == list(option_names())
    P.dumps_strict(schema)  # goes on the wire as it is
    defaults = {o["name"]: o["default"] for o in schema if o["default"] is not None}
    assert P.RenderParams.from_content({"output": "/o.wav", **defaults}).options() == RenderOptions()
    by_name = {o["name"]: o for o in schema}
    assert by_name["steps"]["range"] == [1, 1000] and by_name["scheduler"]["choices"] == ["ddim", "dpmpp", "euler"]
    assert by_name["tempo_bpm"]["nullable"] and by_name["tempo_bpm"]["group"] == PLAN


def test_the_batch_holds_the_options():
    assert issubclass(ScoreOptions, RenderOptions)
    opts = ScoreOptions(steps=3, picture_guidance=1.0, target_lufs=-24.0, tempo_bpm=96.0, maestro="bach")
    assert opts.options() == RenderOptions(steps=3, picture_guidance=1.0, target_lufs=-24.0, tempo_bpm=96.0)
    # the sidecar round trip `conform` reads a batch's options back with; older sidecars name a loudness preset
    assert ScoreOptions.from_json(opts.to_json()) == opts
    old = {k: v for k, v in ScoreOptions().to_json().items() if k != "target_lufs"} | {"loudness": "atsc-a85"}
    assert ScoreOptions.from_json(old).target_lufs == -24.0
    # what the engine would refuse of every cue is refused before the batch renders any
    ScoreOptions(maestro="bach", tempo_bpm=90.0).validate()
    with pytest.raises(FilmscoreError, match="not reference audio"):
        ScoreOptions(reference_audio=Path("r.wav"), tempo_bpm=90.0).validate()
    with pytest.raises(FilmscoreError, match="steps must be 1..1000"):
        ScoreOptions(steps=0).validate()


def test_requests_and_the_pipeline_take_their_defaults_from_the_options():
    import inspect

    from filmscore.engine.pipeline import FilmScorePipeline

    assert RenderRequest(Path("x.wav")).options() == RenderOptions()
    params = inspect.signature(FilmScorePipeline._run).parameters
    for name in ("seed", "steps", "scheduler", "picture_guidance", "control_guidance", "control_strength", "vocoder"):
        assert params[name].default == option_field(name).default


def test_groups_cover_every_option_once():
    assert set(option_names(RENDER)) | set(option_names(PLAN)) == set(option_names())
    assert not set(option_names(RENDER)) & set(option_names(PLAN))
    assert [f.name for f in dataclasses.fields(RenderOptions)] == list(option_names())


def test_the_options_table_in_the_docs_is_the_options():
    from filmscore.engine.options import options_markdown

    doc = (Path(__file__).resolve().parent.parent / "docs" / "options.md").read_text()
    assert options_markdown() in doc, "docs/options.md is out of date: regenerate its table (see the file)"


def test_a_named_mood_reaches_every_front_end_and_the_plan():
    """`mood` (the cue plan's named moods), added to engine/options.py alone, is a flag of render and score, a
    protocol field, a batch option, and the plan the engine makes takes its energy, valence and tension."""
    from filmscore.engine.options import MOODS
    from filmscore.engine.plan.spec import PlanSpec, make_cue_plan

    for command in ("render", "score"):
        assert "--mood" in _flags(_subparser(build_parser(), command))
    cli = options_from_args(build_parser().parse_args(COMMANDS["score"] + ["--mood", "tense", "--valence", "0.6"]))
    assert cli.mood == "tense" and cli.plan_given
    assert P.RenderParams.from_content({"output": "/o.wav", "mood": "tense", "valence": 0.6}).options() == cli
    assert ScoreOptions(**cli.option_values()).options() == cli
    energy, _, tension = MOODS["tense"]
    assert PlanSpec.of(cli).overrides.energy == energy and PlanSpec.of(cli).overrides.tension == tension
    assert PlanSpec.of(cli).overrides.valence == 0.6  # given on its own: replaces the mood's
    sad = make_cue_plan(PlanSpec.of(RenderOptions(mood="sad")), duration_s=6.0, seed=0)
    joyful = make_cue_plan(PlanSpec.of(RenderOptions(mood="joyful")), duration_s=6.0, seed=0)
    assert (sad.mode, joyful.mode) == ("minor", "major")
    assert sad.tempo.tempo_bpm < joyful.tempo.tempo_bpm
    with pytest.raises(FilmscoreError, match="unknown mood 'glum'; choose one of calm"):
        P.RenderParams.from_content({"output": "/o.wav", "mood": "glum"})
