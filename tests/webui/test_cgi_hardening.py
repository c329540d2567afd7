"""The CGI under abuse (issue 13, item 8): every request ends in one proper HTTP answer, sent
through a real busybox httpd as raw bytes on a socket (http.client cannot send a byte that is
not UTF-8 in the method or a header).  Before: a non-UTF-8 byte in the method or in Origin
killed the CGI with a UnicodeEncodeError (no answer at all), and ``token=%C2%B2-x`` (a
superscript two passes str.isdigit) gave a 500 page with the ValueError's text."""

import base64
import io
import re
import socket

import pytest

from serlite import webui

from .conftest import PASSWORD, USER, Httpd

AUTH = b"Authorization: Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()) + b"\r\n"
FORM = b"Content-Type: application/x-www-form-urlencoded\r\n"


@pytest.fixture
def httpd(busybox, pybin, tmp_path):
    server = Httpd(busybox, tmp_path / "httpd",
                   {"SER_UNIX_SOCK": str(tmp_path / "nobody.sock"),
                    "SER_WEBUI_SECRET": str(tmp_path / "webui.secret"),
                    "SER_RESTART_CMD": "/bin/false", "SER_WEBUI_UBUS": ""}, pybin)
    yield server
    server.stop()


def exchange(httpd, request, timeout=30):
    """Send raw bytes, read until the server closes; (status, headers, body bytes)."""
    with socket.create_connection(("127.0.0.1", httpd.port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    reply = b"".join(chunks)
    assert reply, "no HTTP answer at all: the CGI died"
    head, sep, body = reply.partition(b"\r\n\r\n")
    assert sep, reply
    lines = head.split(b"\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", lines[0])
    assert m, lines[0]
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (line.decode("latin-1").partition(":") for line in lines[1:])}
    return int(m.group(1)), headers, body


def post(httpd, body, *extra):
    return (b"POST /cgi-bin/ser HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n" % httpd.port + AUTH + FORM
            + b"".join(extra) + b"Content-Length: %d\r\n\r\n" % len(body) + body)


def assert_short_page(status, headers, body, expected):
    assert status == expected, body[:500]
    assert headers["content-type"] == "text/html; charset=utf-8"
    text = body.decode("utf-8")                 # what we write is UTF-8, always
    assert "Traceback" not in text and "Error:" not in text
    return text


@pytest.mark.parametrize("method", [b"G\xffT", b"P\xc3\xa9ST", b"GE\x80"])
def test_a_method_that_is_not_a_token_gets_400(httpd, method):
    status, headers, body = exchange(
        httpd, method + b" /cgi-bin/ser HTTP/1.0\r\nHost: 127.0.0.1\r\n" + AUTH + b"\r\n")
    text = assert_short_page(status, headers, body, 400)
    assert "The request method is not an HTTP token." in text


@pytest.mark.parametrize("header", [b"Origin: http://\xff\xfe", b"Origin: http://r\xc3(",
                                    b"Referer: http://\xff/cgi-bin/ser"])
def test_a_non_utf8_origin_or_referer_is_refused_403(httpd, header):
    status, headers, body = exchange(httpd, post(httpd, b"action=reload", header + b"\r\n"))
    text = assert_short_page(status, headers, body, 403)
    assert "comes from another site" in text


@pytest.mark.parametrize("header", [b"Host: \xff\xfe", b"User-Agent: caf\xe9",
                                    b"X-Junk: \xc0\xaf"])
def test_the_page_is_shown_whatever_bytes_other_headers_carry(httpd, header):
    request = (b"GET /cgi-bin/ser?refresh=\xff HTTP/1.0\r\n" + header + b"\r\n" + AUTH
               + (b"Host: 127.0.0.1\r\n" if not header.startswith(b"Host") else b"") + b"\r\n")
    status, headers, body = exchange(httpd, request)
    text = assert_short_page(status, headers, body, 200)
    assert 'id="status"' in text


@pytest.mark.parametrize("token", [b"%C2%B2-x", b"%D9%A3%D9%A3-abc", b"\xb2-x", b"1" * 40 + b"-x",
                                   b"-x", b"12"])
def test_a_token_that_is_not_ascii_digits_is_a_bad_token_403(httpd, token):
    origin = b"Origin: http://127.0.0.1:%d\r\n" % httpd.port
    status, headers, body = exchange(httpd, post(httpd, b"action=reload&token=" + token, origin))
    text = assert_short_page(status, headers, body, 403)
    assert "the form carries no valid token" in text


# --- in-process: what is left when our own code fails ------------------------------------------

def run_cgi(tmp_path, **environ):
    env = {"SER_WEBUI_CONF": str(tmp_path / "none.conf"), "SER_UNIX_SOCK": str(tmp_path / "x"),
           "SER_WEBUI_UBUS": "", "REQUEST_METHOD": "GET", "SCRIPT_NAME": "/cgi-bin/ser"}
    env.update(environ)
    out = io.BytesIO()
    assert webui.main(env, io.BytesIO(b""), out) == 0
    return out.getvalue()


def test_a_bug_is_a_500_without_its_text(tmp_path, monkeypatch, capsys):
    def broken(*args):
        raise ValueError("invalid literal for int() with base 10: 'internal detail'")
    monkeypatch.setattr(webui, "show", broken)
    out = run_cgi(tmp_path)
    assert out.startswith(b"Status: 500 Internal Server Error\r\n")
    assert b"internal detail" not in out and b"ValueError" not in out
    assert b"the web server&#x27;s log has the details" in out
    assert "ValueError: invalid literal" in capsys.readouterr().err      # for the log


def test_when_even_the_error_page_fails_a_plain_500_goes_out(tmp_path, monkeypatch):
    def broken(*args, **kw):
        raise RuntimeError("no page")
    monkeypatch.setattr(webui, "show", broken)
    monkeypatch.setattr(webui.page, "message_page", broken)
    out = run_cgi(tmp_path)
    assert out == webui.LAST_RESORT
    assert out.startswith(b"Status: 500 Internal Server Error\r\nContent-Type: text/plain")


def test_surrogates_in_the_environment_become_replacement_characters():
    env = webui.clean_environ({"HTTP_ORIGIN": "http://\udcff\udcfe", "A": "ok \u2713",
                               "B": "\ud800 lone", "C": 3})
    assert env == {"HTTP_ORIGIN": "http://\ufffd\ufffd", "A": "ok \u2713", "B": "? lone",
                   "C": 3}
