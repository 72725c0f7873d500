"""The auth plugin: Basic authentication per location, in a real server."""

from __future__ import annotations

import base64
import statistics
import subprocess
import sys
import threading
import time

import pytest

from monkey_py_plugins.auth.passwords import Cost, hash_password
from rawhttp import Client
from support import section, site

# Cheap hashes keep the tests quick; the cost travels with each hash.
QUICK = Cost(ln=10, r=8, p=1)
# Slow enough that a check is measurable, and that the loop would visibly stall on it.
SLOW = Cost(ln=15, r=8, p=1)


def basic(user: str, password: str) -> tuple[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return ("Authorization", f"Basic {token}")


def users_file(path, cost=QUICK, **passwords) -> None:
    path.write_text("# users of the tests\n" + "".join(
        f"{name}:{hash_password(pw.encode(), cost).encode()}\n"
        for name, pw in passwords.items()))


def get(port: int, target: str, *headers: tuple[str, str]):
    with Client(port) as client:
        return client.request("GET", target, headers=list(headers))


@pytest.fixture(scope="module")
def server(module_monkey, tmp_path_factory):
    base = tmp_path_factory.mktemp("auth")
    root = base / "htdocs"
    (root / "private").mkdir(parents=True)
    (root / "slow").mkdir()
    (root / "public").mkdir()
    (root / "private" / "report.txt").write_text("the report\n")
    (root / "slow" / "s.txt").write_text("slow\n")
    (root / "public" / "p.txt").write_text("public\n")
    (root / "privateer.txt").write_text("not below /private\n")
    users_file(base / "users", alice="wonderland", bob="builder")
    users_file(base / "slow-users", cost=SLOW, carol="s3cret")
    return module_monkey(
        plugins=["auth"], root=base,
        sites={"default": site(
            "127.0.0.1 localhost", root,
            section("AUTH", "Location /private", 'Title Members "only"', f"Users {base / 'users'}"),
            section("AUTH", "Location /slow/", "Title Slow", f"Users {base / 'slow-users'}"),
        )},
    )


def test_no_credentials_get_401_with_the_realm(server):
    response = get(server.port, "/private/report.txt")
    assert response.status == 401
    assert response.header("WWW-Authenticate") == 'Basic realm="Members \\"only\\""'
    assert b"401 Unauthorized" in response.body


def test_valid_credentials_reach_the_file(server):
    response = get(server.port, "/private/report.txt", basic("alice", "wonderland"))
    assert (response.status, response.body) == (200, b"the report\n")
    # Remembered: the same credentials again are not checked again, and still pass.
    again = get(server.port, "/private/report.txt", basic("alice", "wonderland"))
    assert (again.status, again.body) == (200, b"the report\n")


def test_wrong_password_and_unknown_user_get_the_same_answer(server):
    wrong = get(server.port, "/private/report.txt", basic("alice", "nope"))
    unknown = get(server.port, "/private/report.txt", basic("mallory", "nope"))
    for response in (wrong, unknown):
        assert response.status == 401
    strip_date = lambda r: [h for h in r.headers if h[0] != "Date"]  # noqa: E731
    assert strip_date(wrong) == strip_date(unknown)
    assert wrong.body == unknown.body


def test_unknown_user_costs_the_same_time_as_a_wrong_password(server):
    def timed(user):
        start = time.monotonic()
        assert get(server.port, "/slow/s.txt", basic(user, "wrong")).status == 401
        return time.monotonic() - start

    wrong = statistics.median(timed("carol") for _ in range(3))
    unknown = statistics.median(timed("nobody") for _ in range(3))
    assert 0.5 < unknown / wrong < 2.0, (unknown, wrong)
    start = time.monotonic()
    get(server.port, "/slow/s.txt")  # no credentials: no check to make
    assert time.monotonic() - start < wrong


def test_malformed_credentials_get_401(server):
    for value in ("Basic !!!", "Bearer abc", "Basic " + base64.b64encode(b"nocolon").decode(),
                  "Basic"):
        response = get(server.port, "/private/report.txt", ("Authorization", value))
        assert response.status == 401, value


def test_paths_outside_the_locations_are_open(server):
    assert get(server.port, "/public/p.txt").status == 200
    # A location covers whole path segments: /privateer.txt is not below /private.
    assert get(server.port, "/privateer.txt").body == b"not below /private\n"


@pytest.mark.parametrize("target", [
    "/private", "/private/", "/%70rivate/report.txt", "/./private/report.txt",
    "/public/../private/report.txt", "//private//report.txt", "/slow",
])
def test_spellings_of_a_protected_path_are_protected(server, target):
    assert get(server.port, target).status == 401


def test_unnormalisable_paths_are_refused(server):
    assert get(server.port, "/private%2freport.txt").status == 403


def test_a_password_check_does_not_stall_the_worker(server):
    """While a slow scrypt check runs, other requests of the same worker are answered."""
    result = {}

    def slow_login():
        result["response"] = get(server.port, "/slow/s.txt", basic("carol", "s3cret"))

    thread = threading.Thread(target=slow_login)
    thread.start()
    time.sleep(0.02)
    gaps = []
    while thread.is_alive():
        start = time.monotonic()
        assert get(server.port, "/public/p.txt").status == 200
        gaps.append(time.monotonic() - start)
    thread.join()
    assert result["response"].status == 200 and result["response"].body == b"slow\n"
    assert gaps and max(gaps) < 0.15, gaps


def test_a_post_is_refused_without_reading_its_body(server):
    with Client(server.port) as client:
        response = client.request("POST", "/private/report.txt", body=b"x" * 10,
                                  headers=[("Content-Length", "10")])
    assert response.status == 401


def monkey(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monkey_py", *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_monkey_passwd_creates_changes_and_deletes_users(tmp_path, start_monkey, docroot):
    users = tmp_path / "users"
    result = monkey("passwd", "--stdin", "-c", str(users), "dora", stdin="first\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[+] Adding user dora"
    assert monkey("passwd", "--stdin", str(users), "eve", stdin="evepw\n").returncode == 0
    changed = monkey("passwd", "--stdin", str(users), "dora", stdin="second\n")
    assert changed.stdout.strip() == "[+] Password changed for user dora"
    lines = users.read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["dora", "eve"]
    assert all(line.split(":", 1)[1].startswith("$scrypt$ln=14,r=8,p=5$") for line in lines)
    assert oct(users.stat().st_mode & 0o777) == "0o640"

    (docroot / "members").mkdir()
    (docroot / "members" / "m.txt").write_text("members\n")
    server = start_monkey(plugins=["auth"], sites={"default": site(
        "127.0.0.1 localhost", docroot,
        section("AUTH", "Location /members", "Title M", f"Users {users}"))})
    assert get(server.port, "/members/m.txt", basic("dora", "first")).status == 401
    assert get(server.port, "/members/m.txt", basic("dora", "second")).status == 200

    deleted = monkey("passwd", "-D", str(users), "eve")
    assert deleted.returncode == 0 and deleted.stdout.strip() == "[-] Deleting user eve"
    assert [line.split(":")[0] for line in users.read_text().splitlines()] == ["dora"]


@pytest.mark.parametrize("args, stdin, message", [
    (["passwd", "--stdin", "{missing}", "u"], "pw\n", "no such file; use -c"),
    (["passwd", "--stdin", "-c", "{file}", "a:b"], "pw\n", "cannot hold ':'"),
    (["passwd", "--stdin", "-c", "{file}", "u"], "\n", "the password is empty"),
    (["passwd", "-D", "{file}", "nobody"], "", "user nobody is not in"),
])
def test_monkey_passwd_errors(tmp_path, args, stdin, message):
    existing = tmp_path / "users"
    users_file(existing, alice="x")
    args = [a.format(missing=tmp_path / "missing", file=existing) for a in args]
    result = monkey(*args, stdin=stdin)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def check(tmp_path, docroot, auth_lines, users_text=None):
    from support import write_confdir
    if users_text is not None:
        (tmp_path / "users").write_text(users_text)
    conf = write_confdir(tmp_path, ["Listen 127.0.0.1:1"], {"default": site(
        "localhost", docroot, section("AUTH", *auth_lines))}, ["auth"])
    return monkey("check", "-c", str(conf))


def test_an_unreadable_users_file_stops_the_start(tmp_path, docroot):
    result = check(tmp_path, docroot, ["Location /a", "Title T", "Users nowhere/users"])
    assert result.returncode == 2
    assert "sites/default:7:" in result.stderr and "cannot read the users file" in result.stderr
    result = check(tmp_path, docroot, ["Location /a", "Title T", f"Users {tmp_path}"])
    assert "sites/default:7:" in result.stderr and "not a regular file" in result.stderr


@pytest.mark.parametrize("users_text, where, what", [
    ("alice:{SHA1}qUqP5cyxm6YcTAhz05Hph5gvu9M=\n", "users:1:", "SHA-1"),
    ("# comment\n\nalice\n", "users:3:", "expected 'name:hash'"),
    ("alice:$scrypt$ln=99,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$" + "A" * 43 + "\n", "users:1:",
     "out of range"),
    ("", "sites/default:7:", "lists no user"),
])
def test_users_file_mistakes_are_reported_at_their_line(tmp_path, docroot, users_text, where,
                                                         what):
    result = check(tmp_path, docroot, ["Location /a", "Title T", f"Users {tmp_path / 'users'}"],
                   users_text)
    assert result.returncode == 2
    assert where in result.stderr and what in result.stderr, result.stderr


def test_duplicate_users_are_reported(tmp_path, docroot):
    line = f"alice:{hash_password(b'x', QUICK).encode()}\n"
    result = check(tmp_path, docroot, ["Location /a", "Title T", f"Users {tmp_path / 'users'}"],
                   line + line)
    assert "users:2:" in result.stderr and "listed twice (first at line 1)" in result.stderr


def test_auth_section_keys_are_checked(tmp_path, docroot):
    result = check(tmp_path, docroot, ["Location a", "Title T", "Users u"])
    assert "sites/default:5:" in result.stderr
    assert "must be a path starting with '/'" in result.stderr
    result = check(tmp_path, docroot, ["Location /a", "Title T"])
    assert "needs a 'Users' key" in result.stderr
