"""The artist page's session ends on the server when the artist signs out: a saved copy of the
cookie no longer works, and neither does one whose key was revoked."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.web_session import SESSION_COOKIE, decode_session, session_secret
from foundry.accounts import service as accounts_service
from tests.api.conftest import Keys


@pytest.fixture
def client(migrated):
    with TestClient(create_app(migrated), follow_redirects=False) as test_client:
        yield test_client


def sign_in(client, key: str) -> str:
    """Sign in through the form as a browser would; the session cookie's value."""
    page = client.get("/artist/sign-in")
    csrf = page.cookies.get("foundry_login_csrf")
    response = client.post("/artist/sign-in", data={"api_key": key, "csrf_token": csrf})
    assert (response.status_code, response.headers["location"]) == (303, "/artist")
    return response.cookies[SESSION_COOKIE].strip('"')  # quoted on the wire: it holds '=' padding


def page_with(migrated, cookie: str):
    with TestClient(create_app(migrated), follow_redirects=False, cookies={SESSION_COOKIE: cookie}) as browser:
        return browser.get("/artist")


def test_a_signed_out_session_cookie_stops_working(client, migrated, keys: Keys):
    cookie = sign_in(client, keys.artist)
    assert page_with(migrated, cookie).status_code == 200
    other_device = sign_in(client, keys.artist)  # the same artist signed in elsewhere too

    csrf = decode_session(session_secret(migrated), cookie).csrf
    with TestClient(create_app(migrated), follow_redirects=False, cookies={SESSION_COOKIE: cookie}) as browser:
        signed_out = browser.post("/artist/sign-out", data={"csrf_token": csrf})
    assert signed_out.status_code == 303 and "Signed%20out" in signed_out.headers["location"]

    replayed = page_with(migrated, cookie)  # a copy of the cookie kept after signing out
    assert (replayed.status_code, replayed.headers["location"]) == (303, "/artist/sign-in")
    assert page_with(migrated, other_device).status_code == 200  # only the signed-out session ended
    again = sign_in(client, keys.artist)
    assert page_with(migrated, again).status_code == 200


def test_a_revoked_key_ends_its_sessions(client, migrated, sessions, keys: Keys):
    cookie = sign_in(client, keys.artist)
    key_id = decode_session(session_secret(migrated), cookie).key_id
    with sessions() as session, session.begin():
        accounts_service.revoke_api_key(session=session, key_id=key_id)
    assert page_with(migrated, cookie).status_code == 303


def test_artist_page_numbers_are_bounded(client, migrated, keys: Keys):
    cookie = sign_in(client, keys.artist)
    with TestClient(create_app(migrated), cookies={SESSION_COOKIE: cookie}) as browser:
        assert browser.get("/artist", params={"page": 3}).status_code == 200
        for page in (str(2**70), "-1"):
            response = browser.get("/artist", params={"page": page})
            assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")
