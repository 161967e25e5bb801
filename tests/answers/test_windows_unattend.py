"""windows-unattend: unattend XML with the passes, components and callbacks Setup needs."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from answerkit import INSTALL_URL, Serve

NS = {
    "u": "urn:schemas-microsoft-com:unattend",
    "wcm": "http://schemas.microsoft.com/WMIConfig/2002/State",
}
U = "{urn:schemas-microsoft-com:unattend}"
TRICKY = "p<&\"'>w ]]> é"
LONG_URL = "http://198.18.0.1:8080/api/v1/installs/" + "x" * 43  # token_urlsafe(32)


def parse(text: str) -> ET.Element:
    return ET.fromstring(text.encode("utf-8"))


def component(root: ET.Element, pass_: str, name: str) -> ET.Element:
    found = root.find(f"u:settings[@pass='{pass_}']/u:component[@name='{name}']", NS)
    assert found is not None, f"{pass_}/{name} missing"
    return found


@pytest.mark.parametrize("firmware", ["uefi", "bios"])
def test_passes_and_components(serve: Serve, firmware: str) -> None:
    root = parse(serve("windows-unattend", admin_password="x", firmware=firmware))
    assert root.tag == f"{U}unattend"
    assert [s.get("pass") for s in root.findall("u:settings", NS)] == [
        "windowsPE",
        "specialize",
        "oobeSystem",
    ]
    for settings in root.findall("u:settings", NS):
        for comp in settings.findall("u:component", NS):
            assert comp.get("processorArchitecture") == "amd64"
            assert comp.get("publicKeyToken") == "31bf3856ad364e35"
            assert comp.get("language") == "neutral"
            assert comp.get("versionScope") == "nonSxS"
    setup = component(root, "windowsPE", "Microsoft-Windows-Setup")
    parts = setup.findall(".//u:CreatePartition/u:Type", NS)
    expected = ["EFI", "MSR", "Primary"] if firmware == "uefi" else ["Primary", "Primary"]
    assert [p.text for p in parts] == expected
    install_to = setup.find(".//u:InstallTo/u:PartitionID", NS)
    assert install_to is not None and install_to.text == str(len(expected))
    assert setup.findtext(".//u:UserData/u:AcceptEula", namespaces=NS) == "true"
    for key in ("Order", "Type"):
        for part in setup.findall(".//u:CreatePartition", NS):
            assert part.find(f"u:{key}", NS) is not None
    for add in root.iter():
        if add.tag in (f"{U}CreatePartition", f"{U}RunSynchronousCommand", f"{U}MetaData"):
            assert add.get(f"{{{NS['wcm']}}}action") == "add"


def test_values_are_escaped_and_survive_xml(serve: Serve) -> None:
    root = parse(serve("windows-unattend", admin_password=TRICKY, organization="A & B <x>"))
    shell = component(root, "oobeSystem", "Microsoft-Windows-Shell-Setup")
    assert shell.findtext("u:UserAccounts/u:AdministratorPassword/u:Value", namespaces=NS) == TRICKY
    assert shell.findtext("u:AutoLogon/u:Password/u:Value", namespaces=NS) == TRICKY
    pe = component(root, "windowsPE", "Microsoft-Windows-Setup")
    assert pe.findtext("u:UserData/u:Organization", namespaces=NS) == "A & B <x>"


def test_computer_name_is_netbios_sized(serve: Serve) -> None:
    root = parse(serve("windows-unattend", admin_password="x"))
    name = component(root, "specialize", "Microsoft-Windows-Shell-Setup").findtext(
        "u:ComputerName", namespaces=NS
    )
    assert name == "web01"


def commands(root: ET.Element) -> list[str]:
    return [e.text or "" for e in root.iter() if e.tag in (f"{U}Path", f"{U}CommandLine")]


def test_callbacks_and_command_lengths(serve: Serve) -> None:
    text = serve("windows-unattend", admin_password="x").replace(INSTALL_URL, LONG_URL)
    cmds = commands(parse(text))
    assert len(cmds) == 5
    # Setup refuses RunSynchronous paths over 259 characters, FirstLogonCommands over 1024.
    assert all(len(c) <= 259 for c in cmds), [len(c) for c in cmds]
    assert f"{LONG_URL}/progress" in cmds[0]
    assert all(f"$U='{LONG_URL}'" in c for c in cmds[1:])
    assert "Install-ErrorHandler" in cmds[1] and "Send-Progress 60" in cmds[1]
    assert "Set-NetworkFirst" in cmds[3]
    # done only: a done the server did not receive is no failed install
    assert cmds[4].endswith(';Send-Done"') and "Send-Failed" not in cmds[4]


def test_embedded_helper_is_found_the_way_the_commands_find_it(serve: Serve) -> None:
    text = serve("windows-unattend", admin_password="x", network_boot_first=False)
    parts = re.split("#BF[P]S#", text)  # PowerShell's -split takes the same regular expression
    assert len(parts) == 3
    helper = parts[1]
    for fn in (
        "Send-Progress",
        "Send-Done",
        "Send-Failed",
        "Install-ErrorHandler",
        "Set-NetworkFirst",
    ):
        assert f"function {fn}" in helper
    for endpoint in ("'progress'", "'done'", "'failed'"):
        assert f"Send-Bootfleet {endpoint}" in helper
    assert "--" not in helper  # it lives in an XML comment
    handler = helper[helper.index("function Install-ErrorHandler") :]
    handler = handler[: handler.index("\n}\n")]
    assert "\\Setup\\Scripts" in handler and "ErrorHandler.cmd" in handler
    assert "Send-Failed" in handler  # what Setup runs on a fatal error
    assert "$U" in helper and INSTALL_URL not in helper
    assert "Set-NetworkFirst" not in "".join(commands(parse(text)))
    assert helper.count("{") == helper.count("}")


def test_double_hyphens_in_names_do_not_break_the_comments(serve: Serve) -> None:
    odd = {"hostname": "xn--bcher-kva.example", "profile": "win---11"}
    root = parse(serve("windows-unattend", **odd, admin_password="x"))
    name = component(root, "specialize", "Microsoft-Windows-Shell-Setup").findtext(
        "u:ComputerName", namespaces=NS
    )
    assert name == "xn--bcher-kva"
