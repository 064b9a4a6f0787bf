"""`weron manager` as a user runs it, against a real signaler process."""

from __future__ import annotations

from websockets.sync.client import connect

from tests.e2e.conftest import StartSignaler
from tests.e2e.processes import SignalerProcess, free_port, run_weron


def manager(signaler: SignalerProcess, *args: str, password: str = "api-secret"):  # type: ignore[no-untyped-def]
    return run_weron(
        "manager", *args, env={"WERON_RADDR": signaler.http_url, "API_PASSWORD": password}
    )


def test_create_list_delete_as_csv(signaler: SignalerProcess) -> None:
    listed = manager(signaler, "list")
    assert (listed.returncode, listed.stdout) == (0, "id,clients,persistent\n")
    created = manager(signaler, "create", "--community", "mycommunity", "--password", "pw")
    assert (created.returncode, created.stdout) == (
        0,
        "id,clients,persistent\nmycommunity,0,true\n",
    )
    with connect(signaler.join_url("mycommunity", "pw")), connect(signaler.join_url("eph", "x")):
        listed = manager(signaler, "ls")
    rows = sorted(listed.stdout.splitlines()[1:])
    assert rows == ["eph,1,false", "mycommunity,1,true"]
    deleted = manager(signaler, "rm", "--community", "mycommunity")
    assert (deleted.returncode, deleted.stdout) == (0, "")
    assert manager(signaler, "l").stdout == "id,clients,persistent\n"


def test_api_key_and_flags_work_like_the_environment(signaler: SignalerProcess) -> None:
    by_key = run_weron(
        "manager", "list", env={"WERON_RADDR": signaler.ws_url, "API_KEY": "api-secret"}
    )
    assert by_key.returncode == 0, by_key.stderr
    by_flag = run_weron(
        "manager", "list", "--raddr", signaler.http_url, "--api-password", "api-secret"
    )
    assert by_flag.returncode == 0, by_flag.stderr


def test_errors_are_clear_and_without_traceback(
    signaler: SignalerProcess, signaler_factory: StartSignaler
) -> None:
    cases = [
        (manager(signaler, "list", password="nope"), "401"),
        (manager(signaler, "delete", "--community", "ghost"), "404"),
        (manager(signaler, "create", "--community", "twice", "--password", "a"), None),
        (manager(signaler, "create", "--community", "twice", "--password", "a"), "409"),
        (manager(signaler, "create", "--community", "x"), "missing password"),
        (manager(signaler, "delete"), "missing community"),
        (
            run_weron("manager", "list", env={"WERON_RADDR": signaler.http_url}),
            "missing API password",
        ),
        (manager(signaler_factory(), "list"), "501"),
        (
            run_weron(
                "manager",
                "list",
                "--raddr",
                f"http://127.0.0.1:{free_port()}/",
                env={"API_PASSWORD": "x"},
            ),
            "cannot reach the signaler",
        ),
        (
            run_weron("manager", "list", "--raddr", "ftp://x", env={"API_PASSWORD": "x"}),
            "not an http",
        ),
    ]
    for result, expected in cases:
        assert "Traceback" not in result.stderr, result.stderr
        if expected is None:
            assert result.returncode == 0, result.stderr
            continue
        assert result.returncode != 0
        assert expected in result.stderr, result.stderr
