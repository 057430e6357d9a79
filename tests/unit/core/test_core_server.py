"""The string server on its own: routes, line splitting, close policy."""

from __future__ import annotations

from importlib import resources

import pytest

from l4kit.core import DEFAULT_ROUTES_TOML, AppReply, Routes, StringServer, make_app_factory
from l4kit.errors import ConfigError
from l4kit.wire import Endpoint, FourTuple


def test_default_routes() -> None:
    routes = Routes.default()
    assert routes.reply_for("toppage") == "hello world"
    assert routes.reply_for("ping") == "pong"
    assert routes.reply_for("help") == "commands: help, ping, toppage"
    assert routes.commands == ["help", "ping", "toppage"]


def test_shipped_routes_file_is_the_embedded_default() -> None:
    text = resources.files("l4kit").joinpath("data/routes.toml").read_text(encoding="utf-8")
    assert text == DEFAULT_ROUTES_TOML
    assert Routes.parse_toml(text) == Routes.default()


def test_routes_from_toml_with_own_help() -> None:
    routes = Routes.parse_toml('[routes]\nhello = "world"\n"a.b" = "dotted"\nhelp = "ask nicely"\n')
    assert routes.reply_for("hello") == "world"
    assert routes.reply_for("a.b") == "dotted"
    assert routes.reply_for("help") == "ask nicely"


def test_unknown_command_reply_is_one_safe_line() -> None:
    routes = Routes.default()
    assert routes.reply_for("xyz") == "error: unknown command 'xyz' (try: help)"
    nasty = routes.reply_for("\x1b[2Jboom" + "y" * 100)
    assert "\x1b" not in nasty and "\n" not in nasty
    assert nasty.startswith("error: unknown command '\\x1b[2Jboom")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[routes\n", "not valid TOML"),
        ('toppage = "x"\n', "unknown key 'toppage'"),
        ("", "no [routes] table"),
        ('routes = "x"\n', "must be a table"),
        ("[routes]\nping = 1\n", "must be a string"),
        ('[routes]\n"two words" = "x"\n', "one word"),
        ('[routes]\n"" = "x"\n', "empty command"),
        ('[routes.ping]\nx = "y"\n', "is a table"),
        ('[routes]\n"' + "c" * 65 + '" = "x"\n', "longer than 64"),
        ('[routes]\nbig = "' + "x" * 70000 + '"\n', "longer than 65536"),
        ('[routes]\nping = "pong"\n[other]\n', "unknown key 'other'"),
    ],
)
def test_bad_route_files_give_one_line_config_errors(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Routes.parse_toml(text, source="my.toml")
    message = str(info.value)
    assert fragment in message
    assert message.startswith("my.toml: ")
    assert "\n" not in message


def test_lines_split_over_calls_and_several_in_one() -> None:
    server = StringServer(keep_open=True)
    assert server.on_data(b"top") == AppReply()
    assert server.on_data(b"page\r") == AppReply()
    assert server.on_data(b"\nping\nhelp") == AppReply(b"hello world\npong\n")
    assert server.on_data(b"\n") == AppReply(b"commands: help, ping, toppage\n")
    assert server.requests == 3


def test_an_empty_request_is_answered_and_closed_like_an_unknown_command() -> None:
    empty = b"error: empty request (try: help)\n"
    for line in (b"\n", b"\r\n", b"   \n"):
        server = StringServer()
        assert server.on_data(line) == AppReply(empty, close=True)
    server = StringServer(keep_open=True)
    assert server.on_data(b"\nping\n\n") == AppReply(empty + b"pong\n" + empty)
    assert server.requests == 3


def test_default_policy_closes_after_the_first_batch() -> None:
    server = StringServer()
    assert server.on_data(b"toppage\nping\npartial") == AppReply(b"hello world\npong\n", close=True)
    assert server.on_data(b"more\n") == AppReply()  # closed: nothing more is answered


def test_peer_close_answers_an_unterminated_request() -> None:
    server = StringServer()
    assert server.on_data(b"toppage") == AppReply()
    assert server.on_peer_closed() == AppReply(b"hello world\n", close=True)


def test_keep_open_closes_when_the_peer_does() -> None:
    server = StringServer(keep_open=True)
    assert server.on_data(b"ping\n") == AppReply(b"pong\n")
    assert server.on_peer_closed() == AppReply(close=True)


def test_overlong_line_is_refused_and_closed() -> None:
    server = StringServer(keep_open=True, max_line=16)
    reply = server.on_data(b"x" * 17)
    assert reply == AppReply(b"error: line longer than 16 bytes\n", close=True)
    server = StringServer(keep_open=True, max_line=16)
    reply = server.on_data(b"ping\n" + b"y" * 20 + b"\n")
    assert reply == AppReply(b"pong\nerror: line longer than 16 bytes\n", close=True)


def test_utf8_replies_and_invalid_utf8_requests() -> None:
    server = StringServer(Routes.from_mapping({"café": "crème"}), keep_open=True)
    assert server.on_data("café\n".encode()) == AppReply("crème\n".encode())
    reply = server.on_data(b"\xff\xfe\n")
    assert reply.data.startswith(b"error: unknown command")


def test_app_factory_gives_each_connection_its_own_server() -> None:
    factory = make_app_factory(Routes.default(), keep_open=True)
    key = FourTuple(Endpoint("10.0.0.1", 8888), Endpoint("10.0.0.2", 1))
    first, second = factory(key), factory(key)
    assert first is not second
    first.on_data(b"top")
    assert second.on_data(b"ping\n") == AppReply(b"pong\n")
