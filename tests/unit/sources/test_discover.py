"""discover: community lists, in the shapes they really have, into servers.yaml."""

from __future__ import annotations

from monitor.sources.lists import Filters, parse_list, servers_of
from monitor.sources.names import derive_name, entry_url
from tests.support.paths import HANDBOOK, RANDOM_REDIRECT


def by_host(text: str) -> dict[str, dict[str, str]]:
    parsed = parse_list(text)
    return {
        i.url.split("/")[2]: {**i.labels, **({"limited": "yes"} if i.limited else {})}
        for i in parsed.instances
    }


def test_handbook_tables_headings_marks_and_links() -> None:
    parsed = parse_list(HANDBOOK.read_text())
    assert parsed.format == "markdown"
    assert parsed.skipped_count == 0, parsed.skipped
    hosts = by_host(HANDBOOK.read_text())
    # Bullets that link to other lists and tools are not servers.
    assert not {"gitlab.com", "pads.ccc.de", "jitsi.random-redirect.de", "github.com"} & set(hosts)
    # The official servers, merged with meet.jit.si's row in the US table.
    assert hosts["8x8.vc"] == {"official": "true"}
    assert hosts["meet.jit.si"]["official"] == "true"
    assert hosts["meet.jit.si"]["cloud"] == "true"
    assert hosts["meet.jit.si"]["hoster"] == "AMAZON-02"
    # Region and country from the headings, the anchors dropped.
    assert hosts["easyconference.uibk.ac.at"] == {
        "region": "Europe",
        "country": "Austria",
        "non_google_stun": "true",
        "cloud": "false",
        "hoster": "University of Innsbruck",
    }
    assert hosts["meet.mayfirst.org"]["region"] == "South & North America"
    # A link in the hoster cell gives its text; marks in the STUN cell.
    assert hosts["jitsi.projectsegfau.lt"]["hoster"] == "Project Segfault"
    assert hosts["pro.fairmeeting.net"]["dial_in"] == "true"
    assert hosts["pro.fairmeeting.net"]["recording"] == "true"
    assert hosts["konferenz.netzbegruenung.de"]["dial_in"] == "true"
    # ❌ with a remark after it; tabs around cells; rows without their last pipe.
    assert hosts["meet.ffmuc.net"]["cloud"] == "true"
    assert hosts["allo.bim.land"]["hoster"] == "ILOTH"
    assert hosts["blabla.dedidream.com"]["hoster"] == "Online S.a.s."
    assert hosts["meet.ffbrb.de"]["non_google_stun"] == "true"
    assert hosts["meet.stuvus.uni-stuttgart.de"]["hoster"] == "Universität Stuttgart"
    # An empty hoster cell gives no label.
    assert "hoster" not in hosts["meet.graz.social"]
    # Duplicates merged: the first mention wins, a later one fills what it lacks.
    assert parsed.duplicates == 4
    assert hosts["meet.nerd.re"]["hoster"] == "Contabo GmbH"
    assert hosts["visio.ecloud.global"]["hoster"] == "Online S.a.s."
    # The special cases need an account: marked, and kept out by default.
    assert hosts["rendez-vous.renater.fr"]["limited"] == "yes"
    assert hosts["jitsi.tu-dresden.de"]["limited"] == "yes"
    assert "limited" not in hosts["meet.ffmuc.net"]


def test_random_redirect_plain_list() -> None:
    parsed = parse_list(RANDOM_REDIRECT.read_text())
    assert parsed.format == "list"
    urls = [i.url for i in parsed.instances]
    assert len(urls) == 11
    assert "https://jitsi.folkwang-uni.de/" in urls, "a missing trailing slash is added"
    assert all(not i.labels for i in parsed.instances)


def test_plain_list_comments_hosts_and_junk() -> None:
    text = (
        "# my servers\n\n"
        "meet.example.org   # a comment after the entry\n"
        "HTTPS://Meet.Example.org/\n"  # the same server
        "https://tenant.example.org:8443/acme?x=1\n"
        "ftp://files.example.org/\n"
        "not a host\n"
        "https://bücher.example/\r\n"
    )
    parsed = parse_list(text)
    assert [i.url for i in parsed.instances] == [
        "https://meet.example.org/",
        "https://tenant.example.org:8443/acme/",
        "https://xn--bcher-kva.example/",
    ]
    assert parsed.duplicates == 1
    assert [line for line, _ in parsed.skipped] == [6, 7]


def test_names_follow_the_server_name_rules() -> None:
    assert derive_name("https://meet.jit.si/") == "meet-jit-si"
    assert derive_name("http://127.0.0.1:8080/") == "127-0-0-1-8080"
    assert (
        derive_name(entry_url("https://a.example.org/some/tenant")) == "a-example-org-some-tenant"
    )
    long = derive_name(entry_url("x" * 60 + ".example.org"))
    assert len(long) <= 64
    servers = servers_of(parse_list("a-b.example.org\na.b-example.org\n").instances)
    assert [s["name"] for s in servers] == ["a-b-example-org", "a-b-example-org-2"]


def test_filters() -> None:
    instances = parse_list(HANDBOOK.read_text()).instances
    germany = [i for i in instances if Filters(countries=("germany",)).keep(i)]
    assert {i.url for i in germany} >= {"https://meet.ffmuc.net/", "https://meet.nerd.re/"}
    assert "https://meet.lrz.de/" not in {i.url for i in germany}, "limited access is left out"
    with_limited = Filters(countries=("germany",), include_limited=True)
    assert "https://meet.lrz.de/" in {i.url for i in instances if with_limited.keep(i)}
    no_cloud = Filters(regions=("america",), labels=(("cloud", "false"),))
    assert [i.url for i in instances if no_cloud.keep(i)] == ["https://meet.mayfirst.org/"]
