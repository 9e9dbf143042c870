"""Where the console listens: beside the faces by default, alone, or not at all."""

from __future__ import annotations

from guildhall.config import load_settings
from guildhall.server import Listener, plain_http_warning, plan_listeners


def test_the_console_listens_on_8080_beside_the_faces() -> None:
    listeners = plan_listeners(load_settings(None))
    assert Listener("console", "127.0.0.1", 8080) in listeners
    assert len(listeners) == 6


def test_it_can_be_served_alone_or_not_at_all() -> None:
    assert plan_listeners(load_settings(None), ["console"]) == [
        Listener("console", "127.0.0.1", 8080)
    ]
    settings = load_settings(None, console={"enabled": False})
    assert all(listener.face != "console" for listener in plan_listeners(settings))


def test_plain_http_off_loopback_is_pointed_out() -> None:
    on_loopback = load_settings(None)
    assert plain_http_warning(on_loopback, plan_listeners(on_loopback)) is None
    exposed = load_settings(None, console={"host": "0.0.0.0", "port": 8443})
    warning = plain_http_warning(exposed, plan_listeners(exposed))
    assert warning is not None and "0.0.0.0 over plain HTTP" in warning
    proxied = load_settings(None, console={"host": "0.0.0.0"}, trusted_proxies=["10.0.0.1"])
    assert plain_http_warning(proxied, plan_listeners(proxied)) is None
