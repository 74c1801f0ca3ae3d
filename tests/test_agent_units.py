"""The agent's small parts: the answer log, the configuration, the S13 adapter's checks."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.answer_log import AnswerLog, mask_imsi
from agent.config import ConfigError, load_config, parse_allowed_peer, parse_listen, parse_point_code
from agent.s13 import S13Answerer
from agent.service import EquipmentCheck
from diameter.answers import result_code_of
from diameter.capabilities import LocalNode
from diameter.constants import ResultCode
from diameter.message import decode_message
from netio.bad_input import BadInput
from registry.profile import Profile
from registry.store import Registry
from simulator.mme import build_ecr

EXAMPLE = Path(__file__).resolve().parents[1] / "agent" / "agent.example.yaml"


@given(st.text(), st.text(), st.one_of(st.none(), st.text()))
def test_answer_log_lines_are_json_whatever_the_peer_sends(peer: str, session: str, reason: str | None) -> None:
    buffer = io.StringIO()
    AnswerLog(buffer).write("s13", peer, session, "35209900176148", None, "white", "white-list",
                            reason or "", 2001, 12)
    record = json.loads(buffer.getvalue())
    assert buffer.getvalue().count("\n") == 1
    assert (record["peer"], record["session"], record["result"], record["imsi"]) == (peer, session, 2001, None)


def test_answer_log_cuts_long_wire_values_and_masks_every_number_in_the_reason() -> None:
    buffer = io.StringIO()
    log = AnswerLog(buffer, mask=True)
    log.write("s13", "mme" * 30000, "s;" + "x" * 60000, "35209900176148", "250011234567890", "black",
              "paired-mismatch", "paired white, but used with 250011234567890 (MSISDN 992901234567), which is not "
              "bound to it [the query carried no IMSI; 436011234567890 was last seen]", 2001, 12)
    line = buffer.getvalue()
    assert len(line) < 1200 and line.count("\n") == 1
    record = json.loads(line)
    assert record["session"].endswith("...[59746 more]") and len(record["peer"]) < 300
    assert record["imsi"] == "25001********90"
    assert "250011234567890" not in line and "992901234567" not in line and "436011234567890" not in line
    assert "25001********90" in record["reason"] and "99290*****67" in record["reason"]
    plain = io.StringIO()
    AnswerLog(plain).write("s13", "mme", "s", "35209900176148", "250011234567890", "white", "roamer",
                           "inbound roamer (IMSI 250011234567890)", 2001, 1)
    assert json.loads(plain.getvalue())["reason"] == "inbound roamer (IMSI 250011234567890)"  # mask off: as is


def test_imsi_masking_keeps_the_network_and_the_last_digits() -> None:
    assert mask_imsi("437011234567890") == "43701********90"
    assert mask_imsi(None) is None and mask_imsi("4370") == "4370"


def test_the_example_configuration_loads_and_admits_as_documented() -> None:
    config = load_config(EXAMPLE)
    assert config.origin_host == "eir.localdomain" and config.listen[0].port == 3868
    assert config.admits("MME01.localdomain", "127.0.0.1")
    assert not config.admits("mme01.localdomain", "10.1.2.3")  # pattern matches, network does not
    assert config.admits("dra.localdomain", "10.0.0.3") and not config.admits("dra.localdomain", "10.1.2.3")
    assert config.admits("lab-mme.localdomain", "192.0.2.10") and not config.admits("lab-mme.localdomain", "127.0.0.1")
    assert not config.admits("hss.localdomain", "127.0.0.1")


def test_the_example_m3ua_section_and_its_point_code_forms(tmp_path: Path) -> None:
    m3ua = load_config(EXAMPLE).m3ua
    assert m3ua.enabled and [(x.host, x.port) for x in m3ua.listen] == [("127.0.0.1", 2905)]
    assert m3ua.point_code is None and m3ua.routing_contexts is None and m3ua.connect == []
    assert not load_config(None).m3ua.enabled  # off unless configured
    assert parse_point_code("1-2-3") == 1 << 11 | 2 << 3 | 3 and parse_point_code(" 523 ") == 523
    path = tmp_path / "agent.yaml"
    path.write_text("m3ua:\n  connect: [{address: 10.0.0.5:2905, routing_context: 100, asp_identifier: 7}]\n"
                    "  point_code: 0-23-1\n  routing_contexts: 100\n  global_title: '992900000009'\n"
                    "  traffic_mode: override\n")
    m3ua = load_config(path).m3ua
    (link,) = m3ua.connect
    assert (link.listen.host, link.listen.port, link.routing_context, link.asp_identifier) == ("10.0.0.5", 2905, 100, 7)
    assert m3ua.point_code == 23 << 3 | 1 and m3ua.routing_contexts == frozenset({100})
    assert m3ua.global_title == "992900000009" and m3ua.traffic_mode == 1 and m3ua.enabled


def test_without_an_allowlist_only_loopback_peers_are_admitted() -> None:
    config = load_config(None)
    assert config.admits("anything.example", "127.0.0.1") and config.admits("x", "::1")
    assert not config.admits("mme.localdomain", "192.0.2.7") and not config.admits("mme", None)


def test_an_allow_entry_binds_its_name_to_addresses() -> None:
    """Issue 12, item 10: a name alone no longer admits every source address."""
    bare = parse_allowed_peer("mme*.realm")
    assert bare.admits("MME1.realm", "127.0.0.1") and bare.admits("mme1.realm", "::1")
    assert not bare.admits("mme1.realm", "10.0.0.7")  # loopback only unless the entry says otherwise
    bound = parse_allowed_peer("mme1.realm@10.0.0.0/24,2001:db8::/32")
    assert bound.admits("mme1.realm", "10.0.0.7") and bound.admits("mme1.realm", "2001:db8::5")
    assert bound.admits("mme1.realm", "::ffff:10.0.0.7")  # an IPv4 client of a dual-stack listener
    assert not bound.admits("mme1.realm", "127.0.0.1") and not bound.admits("mme2.realm", "10.0.0.7")
    anywhere = parse_allowed_peer("mme*.realm@any")
    assert anywhere.admits("mme9.realm", "198.51.100.1") and str(anywhere) == "mme*.realm@any"
    assert str(parse_allowed_peer("dra@192.0.2.1")) == "dra@192.0.2.1/32"


@pytest.mark.parametrize("text", ["mme@", "@10.0.0.0/8", "mme@10.0.0.0/33", "mme@10.0.0.0/8,", "mme@any,10.0.0.0/8"])
def test_a_bad_allow_peer_entry_is_one_line_saying_what_to_write(text: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_allowed_peer(text)
    assert "\n" not in str(error.value) and repr(text) in str(error.value)
    assert "CIDR" in str(error.value) or "PATTERN" in str(error.value)


def test_peers_allow_in_yaml_takes_both_forms_and_any(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("peers:\n  allow:\n    - mme1.realm@10.0.0.0/24\n    - {host: dra.realm, from: 192.0.2.0/24}\n"
                    "    - {host: '*.lab', from: any}\n    - {host: local.realm}\n")
    config = load_config(path)
    assert [str(entry) for entry in config.allow] == [
        "mme1.realm@10.0.0.0/24", "dra.realm@192.0.2.0/24", "*.lab@any", "local.realm@127.0.0.0/8,::1/128"]
    assert config.admits("x.lab", "203.0.113.9") and not config.admits("local.realm", "10.0.0.1")


@pytest.mark.parametrize(("entry", "message"), [
    ("{host: x, from: []}", "name networks (CIDR"),
    ("{host: x, networks: [10.0.0.0/8]}", "unknown key(s) networks"),
    ("{host: 'x@10.0.0.0/8'}", "networks go in from:"),
    ("'x@nowhere'", "'nowhere' is not a network"),
    ("[x]", "each peers.allow entry is"),
])
def test_a_bad_peers_allow_entry_is_refused_in_one_line(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(f"peers: {{allow: [{entry}]}}\n")
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        load_config(path)
    assert "\n" not in str(error.value)


def test_a_refusal_says_which_entries_the_address_missed() -> None:
    config = load_config(None)
    assert config.refusal("mme.realm", "127.0.0.1") is None
    assert "without peers.allow only loopback" in str(config.refusal("mme.realm", "192.0.2.7"))
    config.allow = [parse_allowed_peer("mme1.realm@10.0.0.0/24"), parse_allowed_peer("dra.realm@any")]
    assert config.refusal("MME1.realm", "127.0.0.1") == \
        "outside the networks of the entries for its name: mme1.realm@10.0.0.0/24"
    assert config.refusal("hss.realm", "10.0.0.1") == "no peers.allow entry matches its Origin-Host"


@pytest.mark.parametrize(("text", "message"), [
    ("listen: 127.0.0.1\n", "not HOST:PORT"),
    ("colour: blue\n", "unknown key(s) colour"),
    ("unknown_imei: grey\n", "unknown_imei is gone"),
    ("profile: ''\n", "profile must be a non-empty string"),
    ("diameter: {watchdog_tw: 2}\n", "at least 6 seconds"),
    ("peers: {allow: [{host: x, from: [not-a-network]}]}\n", "peers.allow x from: 'not-a-network' is not a network"),
    ("listen: [{address: 127.0.0.1:3868, transport: udp}]\n", "transport 'udp'"),
    ("m3ua: {listen: 127.0.0.1}\n", "not HOST:PORT"),
    ("m3ua: {colour: blue}\n", "unknown m3ua key(s) colour"),
    ("m3ua: {point_code: 16384}\n", "point code '16384'"),
    ("m3ua: {point_code: 8-1-1}\n", "zone 0-7"),
    ("m3ua: {routing_contexts: [-1]}\n", "32-bit unsigned"),
    ("m3ua: {global_title: '+99290'}\n", "1 to 15 digits"),
    ("m3ua: {traffic_mode: random}\n", "override, loadshare or broadcast"),
    ("m3ua: {connect: [{address: 10.0.0.1:2905, routing_context: x}]}\n", "routing_context must be"),
    ("m3ua: [127.0.0.1:2905]\n", "m3ua must be a mapping"),
])
def test_bad_configuration_is_refused_with_the_key_and_why(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(path)


def test_listen_parses_ipv6_and_rejects_bad_ports() -> None:
    assert parse_listen("[::1]:3868").host == "::1"
    with pytest.raises(ConfigError):
        parse_listen("127.0.0.1:70000")


@pytest.fixture
def answerer(sqlite_registry: Registry, tj: Profile) -> S13Answerer:
    return S13Answerer(EquipmentCheck(sqlite_registry, tj), LocalNode("eir.localdomain", "localdomain"))


MME = LocalNode("mme.localdomain", "localdomain")


@pytest.mark.parametrize(("imsi", "sv", "imei", "offender"), [
    ("\uff14" * 15, None, "35209900176148", "User-Name"),  # fullwidth digits are not an IMSI
    (" 437011234567890", None, "35209900176148", "User-Name"),  # nothing is stripped off the wire
    ("43701", None, "35209900176148", "User-Name"),
    ("437011234567890", "\u0661\u0662", "35209900176148", "Software-Version"),
    ("437011234567890", "1 ", "35209900176148", "Software-Version"),
    ("437011234567890", None, "\uff13" * 14, "IMEI"),
])
def test_s13_refuses_identities_that_are_not_exactly_ascii_digits(answerer: S13Answerer, imsi: str,
                                                                   sv: str | None, imei: str, offender: str) -> None:
    request = decode_message(build_ecr(MME, imei, imsi, software_version=sv, session="u;1").to_bytes())
    answer = decode_message(answerer(request).to_bytes())
    assert result_code_of(answer) == ResultCode.DIAMETER_INVALID_AVP_VALUE
    failed = answer.find("Failed-AVP").value[0]  # type: ignore[union-attr]
    names = [failed.name, *(member.name for member in failed.value or [] if failed.name != offender)]
    assert offender in names


def test_s13_passes_a_clean_imsi_and_software_version_to_the_decision(answerer: S13Answerer) -> None:
    request = decode_message(build_ecr(MME, "35209900176148", "437011234567890", software_version="07",
                                       session="u;2").to_bytes())
    query, problem = answerer.query(request)
    assert problem is None and query is not None
    assert (query.imsi, query.software_version, query.imei) == ("437011234567890", "07", "35209900176148")


def test_bad_input_is_always_counted_and_logged_at_most_limit_times_a_second(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    bad = BadInput(logging.getLogger("eir.test"), limit=3, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="eir.test"):
        for _ in range(5):
            bad("sccp", "garbage", "pc:2")
        now[0] += 1.0
        bad("sccp", "garbage again", "pc:2")
    assert bad.counters == {"bad_input.sccp": 6}
    assert [record.getMessage() for record in caplog.records] == ["from pc:2: garbage"] * 3 + [
        "from pc:2: garbage again"]
