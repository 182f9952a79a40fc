"""`python -m listrak_source.simulator` with the profile-field switches."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from ._support import client

CMD = [sys.executable, "-m", "listrak_source.simulator"]


def test_cli_serves_check_box_imports() -> None:
    switches = ["--lists", "1001:5", "--checkbox-field", "900", "--checked-value", "true"]
    proc = subprocess.Popen([*CMD, *switches], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        form = {"grant_type": "client_credentials", "client_id": info["client_id"]}
        form["client_secret"] = info["client_secret"]
        with client() as c:
            token = c.post(info["auth_url"], data=form).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        with client(base_url=info["base_url"], headers=headers) as api:
            values = [{"segmentationFieldId": 900, "value": "on"}]
            body = [{"emailAddress": "user000001@example.com", "segmentationFieldValues": values}]
            assert api.post("/List/1001/Contact/SegmentationField", json=body).status_code == 201
            url = "/List/1001/Contact/user000001%40example.com?segmentationFieldIds=900"
            (value,) = api.get(url).json()["data"]["segmentationFieldValues"]
        assert value["value"] == "true"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
        assert code == 0


def test_cli_help_documents_the_new_switches() -> None:
    result = subprocess.run([*CMD, "--help"], capture_output=True, text=True, check=True)
    for switch in ("--checkbox-field", "--checked-value", "--import-delay", "--offset-cursors"):
        assert switch in result.stdout
    assert "SegmentationField" in result.stdout
