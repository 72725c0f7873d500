"""Finding balancers by name through their entry points, third-party ones included."""

from __future__ import annotations

import textwrap
from types import SimpleNamespace

import pytest

from monkey_py.config import ConfigError, Location
from monkey_py_plugins.balancers import Balancer, Server, installed_balancers, load_balancer
from monkey_py_plugins.balancers.first_alive import FirstAlive
from monkey_py_plugins.balancers.least_connections import LeastConnections
from monkey_py_plugins.balancers.locking_round_robin import LockingRoundRobin
from monkey_py_plugins.balancers.naive import Naive
from monkey_py_plugins.balancers.random_two_choices import RandomTwoChoices
from monkey_py_plugins.balancers.round_robin import RoundRobin
from monkey_py_plugins.balancers.source_hash import SourceHash

BUILT_IN = {
    "Naive": Naive,
    "First-Alive": FirstAlive,
    "RoundRobin": RoundRobin,
    "LockingRoundRobin": LockingRoundRobin,
    "LeastConnections": LeastConnections,
    "SourceHash": SourceHash,
    "RandomTwoChoices": RandomTwoChoices,
}
HERE = Location("proxy_reverse.conf", 7)


def failure(name: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_balancer(name, HERE)
    assert caught.value.location == HERE
    return str(caught.value)


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    """An installed distribution whose ``monkey_py.balancers`` entry points are given."""

    def install(entry_points: str, modules: dict[str, str] | None = None) -> None:
        info = tmp_path / "monkey_test_balancers-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: monkey-test-balancers\nVersion: 1.0\n"
        )
        (info / "entry_points.txt").write_text(
            "[monkey_py.balancers]\n" + textwrap.dedent(entry_points)
        )
        for name, source in (modules or {}).items():
            (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))

    return install


@pytest.mark.parametrize("name, cls", BUILT_IN.items())
def test_every_built_in_balancer_loads_by_its_name(name, cls):
    assert load_balancer(name, HERE) is cls


@pytest.mark.parametrize("spelling", [
    "First-Alive", "first_alive", "FIRSTALIVE", "first-alive", "First_Alive", "firstalive",
])
def test_names_match_ignoring_case_dashes_and_underscores(spelling):
    assert load_balancer(spelling, HERE) is FirstAlive


def test_other_spellings_of_the_built_in_names():
    assert load_balancer("round_robin") is RoundRobin
    assert load_balancer("Locking-Round-Robin") is LockingRoundRobin
    assert load_balancer("least_connections") is LeastConnections
    assert load_balancer("source-hash") is SourceHash
    assert load_balancer("random_two_choices") is RandomTwoChoices


def test_installed_balancers_are_keyed_by_normalized_name():
    installed = installed_balancers()
    for name in BUILT_IN:
        key = name.lower().replace("-", "")
        assert installed[key].name == name
        assert installed[key].group == "monkey_py.balancers"


def test_an_unknown_name_lists_the_installed_balancers():
    message = failure("Random")
    assert message.startswith("proxy_reverse.conf:7: unknown load balancer 'Random'; ")
    listed = message.split("installed balancers: ", 1)[1].split(", ")
    assert set(BUILT_IN) <= set(listed)
    assert listed == sorted(listed, key=str.lower)


def test_an_unknown_name_lists_third_party_balancers_too(third_party):
    third_party("Sticky = monkey_test_sticky:Sticky\n")
    assert "Sticky" in failure("Stickie").split("installed balancers: ", 1)[1].split(", ")


def test_an_entry_point_that_is_not_a_balancer_is_refused(third_party):
    third_party(
        """\
        NotAClass = monkey_test_bogus:function
        NotABalancer = monkey_test_bogus:Unrelated
        """,
        {"monkey_test_bogus": """\
            def function():
                pass

            class Unrelated:
                pass
            """},
    )
    message = failure("not-a-class")
    assert "load balancer 'NotAClass' (monkey_test_bogus:function) is not a balancer" in message
    assert "subclass of monkey_py_plugins.balancers.Balancer" in message
    assert "is not a balancer" in failure("NotABalancer")


def test_an_entry_point_that_fails_to_import_is_reported(third_party):
    third_party("Broken = monkey_test_no_such_module:Broken\n")
    message = failure("broken")
    assert "load balancer 'Broken' (monkey_test_no_such_module:Broken) failed to import" in message
    assert "monkey_test_no_such_module" in message


def test_two_entry_points_with_one_normalized_name_are_ambiguous(third_party):
    third_party("round_robin = monkey_test_rr:RoundRobin\n")
    message = failure("RoundRobin")
    assert "load balancer name 'RoundRobin' is ambiguous" in message
    assert "RoundRobin = monkey_py_plugins.balancers.round_robin:RoundRobin" in message
    assert "round_robin = monkey_test_rr:RoundRobin" in message


def test_a_third_party_balancer_loads_like_a_built_in_one(third_party):
    third_party(
        "Reverse-Order = monkey_test_reverse:ReverseOrder\n",
        {"monkey_test_reverse": """\
            from monkey_py_plugins.balancers import Balancer

            class ReverseOrder(Balancer):
                def candidates(self, request):
                    return self.servers[::-1]
            """},
    )
    cls = load_balancer("reverse_order", HERE)
    assert issubclass(cls, Balancer)
    balancer = cls.create([Server(0, "a"), Server(1, "b")], 1)
    assert [server.name for server in balancer.candidates(None)] == ["b", "a"]


# -- the example package in docs/examples/monkey-example-balancer -----------------------
class HeaderRequest:
    """A request stand-in with the lower-case header lookup of the real one."""

    def __init__(self, **headers: bytes) -> None:
        self.headers = {name.replace("_", "-").encode(): value for name, value in headers.items()}
        self.peer = ("192.0.2.7", 40000)

    def header(self, name: bytes) -> bytes | None:
        return self.headers.get(name)


def example_servers() -> list[Server]:
    return [Server(i, name) for i, name in enumerate(["a:80", "b:80", "c:80"])]


def order(balancer, request) -> list[str]:
    return [server.name for server in balancer.candidates(request)]


def test_the_example_balancer_loads_by_its_entry_point_name():
    cls = load_balancer("HeaderHash", HERE)
    assert cls.__module__ == "monkey_example_balancer.header_hash"
    assert load_balancer("header-hash") is cls
    assert "HeaderHash" in [ep.name for ep in installed_balancers().values()]


def test_the_example_balancer_keeps_a_user_on_one_server_then_list_order():
    balancer = load_balancer("HeaderHash").create(example_servers(), 2)
    # crc32(b"mike") % 3 == 1, crc32(b"bob") % 3 == 2, crc32(b"judy") % 3 == 0.
    assert order(balancer, HeaderRequest(x_user=b"mike")) == ["b:80", "c:80", "a:80"]
    assert order(balancer, HeaderRequest(x_user=b"bob")) == ["c:80", "a:80", "b:80"]
    assert order(balancer, HeaderRequest(x_user=b"judy")) == ["a:80", "b:80", "c:80"]
    assert order(balancer, HeaderRequest(x_user=b"mike")) == ["b:80", "c:80", "a:80"]


def test_the_example_balancer_gives_list_order_without_the_header():
    balancer = load_balancer("HeaderHash").create(example_servers(), 1)
    assert order(balancer, HeaderRequest()) == ["a:80", "b:80", "c:80"]
    assert order(balancer, SimpleNamespace(header=lambda name: None)) == ["a:80", "b:80", "c:80"]
