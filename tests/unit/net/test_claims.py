"""The IP VPN's claims: candidates from --ips, the name format, the conflict rule."""

from __future__ import annotations

import ipaddress
import json

import pytest

from weron.net import claims


def test_candidates_take_the_ith_host_of_every_network_in_go_format() -> None:
    networks = claims.parse_networks(["2001:db8::1/64", "192.0.2.1/24"])
    names = claims.candidates(networks, 200, static=False)
    assert len(names) == 200
    assert names[0] == '["2001:db8::1/64","192.0.2.1/24"]'
    assert names[106] == '["2001:db8::6b/64","192.0.2.107/24"]'


def test_ipv4_candidates_skip_network_and_broadcast_and_stop_at_the_smallest_network() -> None:
    networks = claims.parse_networks(["10.0.0.9/30", "fd00::1/64"])
    names = claims.candidates(networks, 200, static=False)
    assert [json.loads(name)[0] for name in names] == ["10.0.0.9/30", "10.0.0.10/30"]


def test_static_claims_exactly_the_given_addresses() -> None:
    networks = claims.parse_networks(["10.0.0.7/24"])
    assert claims.candidates(networks, 200, static=True) == ['["10.0.0.7/24"]']


@pytest.mark.parametrize("ips", [["10.0.0.1"], ["not-an-ip/24"], ["10.0.0.1/33"], [], [" "]])
def test_bad_ips_are_clear_errors(ips: list[str]) -> None:
    with pytest.raises(claims.ClaimError, match=r"ips|IP network"):
        claims.parse_networks(ips)


def test_names_clash_when_they_share_any_address() -> None:
    mine = '["10.0.0.1/24","fd00::1/64"]'
    assert claims.addresses_conflict(['["10.0.0.1/16"]'], mine)
    assert claims.addresses_conflict(['["10.0.0.9/24","fd00::1/64"]'], mine)
    assert not claims.addresses_conflict(['["10.0.0.2/24","fd00::2/64"]'], mine)
    assert not claims.addresses_conflict(["garbage", '"x"', "[1]"], mine)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "{",
        '"10.0.0.1/24"',
        "[]",
        "[1]",
        '["10.0.0.1"]',
        '["x/24"]',
        json.dumps(["10.0.0.1/24"] * 17),
    ],
)
def test_malformed_claims_are_rejected(name: str) -> None:
    with pytest.raises(claims.ClaimError):
        claims.Claim.of(name)


def test_a_claim_packs_its_addresses_and_knows_its_broadcasts() -> None:
    claim = claims.Claim.of('["10.1.0.5/24","fd00::5/64","10.2.0.1/31"]')
    assert claim.packed == (
        bytes([10, 1, 0, 5]),
        bytes.fromhex("fd00" + "00" * 13 + "05"),
        bytes([10, 2, 0, 1]),
    )
    assert claim.broadcasts() == (bytes([10, 1, 0, 255]),)


def overlay(*ips: str) -> claims.Overlay:
    return claims.Overlay(claims.parse_networks(list(ips)))


def test_the_overlay_holds_its_networks_destinations_only() -> None:
    ours = overlay("10.77.0.1/24", "fd00:77::1/64")
    assert ipaddress.ip_address("10.77.0.200").packed in ours
    assert ipaddress.ip_address("fd00:77::ffff").packed in ours
    for outside in ("10.77.1.1", "198.51.100.2", "fd00:78::1", "::a4d:1"):
        assert ipaddress.ip_address(outside).packed not in ours


def test_peers_may_claim_only_hosts_of_our_networks_that_are_not_ours() -> None:
    ours = overlay("10.77.0.1/24", "fd00:77::1/64")
    mine = {ipaddress.ip_address("10.77.0.1").packed}
    claim = claims.Claim.of(
        '["10.77.0.5/24","fd00:77::5/64","198.51.100.3/24","10.77.0.255/24",'
        '"10.77.0.0/24","10.77.0.1/24","8.8.8.8/32","224.0.0.1/4"]'
    )
    admitted, refused = ours.admit(claim, mine)
    assert admitted == [
        ipaddress.ip_address("10.77.0.5").packed,
        ipaddress.ip_address("fd00:77::5").packed,
    ]
    assert refused == {
        "198.51.100.3": "outside our networks",
        "10.77.0.255": "not a host address of its network",
        "10.77.0.0": "not a host address of its network",
        "10.77.0.1": "ours",
        "8.8.8.8": "outside our networks",
        "224.0.0.1": "outside our networks",
    }


def test_tiny_networks_have_no_reserved_addresses() -> None:
    ours = overlay("10.77.0.0/31")
    admitted, refused = ours.admit(claims.Claim.of('["10.77.0.0/31","10.77.0.1/31"]'), set())
    assert len(admitted) == 2 and refused == {}
