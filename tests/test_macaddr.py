import pytest

from server.errors import InvalidInput
from server.macaddr import mac_fragment, mac_hyphens, normalize_mac


@pytest.mark.parametrize(
    "spelling",
    [
        "52:54:00:ab:cd:ef",
        "52-54-00-AB-CD-EF",
        "5254.00ab.cdef",
        "525400abcdef",
        " 52:54:00:AB:cd:EF ",
    ],
)
def test_accepted_spellings_normalise(spelling: str) -> None:
    assert normalize_mac(spelling) == "52:54:00:ab:cd:ef"


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("ff:ff:ff:ff:ff:ff", "broadcast"),
        ("00:00:00:00:00:00", "all-zero"),
        ("01:00:5e:00:00:01", "multicast"),
        ("33:33:00:00:00:01", "multicast"),
        ("52:54:00:ab:cd", "not a MAC"),
        ("52:54:00:ab:cd:ef:01", "not a MAC"),
        ("52:54:00:ab:cd:eg", "not a MAC"),
        ("52:54-00:ab:cd:ef", "not a MAC"),
        ("5254.00ab.cde", "not a MAC"),
        ("", "not a MAC"),
        ("52:54:00:ab\n:cd:ef", "not a MAC"),
        ("\uff15\uff12:54:00:ab:cd:ef", "not a MAC"),  # full-width digits
    ],
)
def test_refused(bad: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why) as info:
        normalize_mac(bad)
    assert info.value.field == "mac"


@pytest.mark.parametrize("bad", [None, 525400, b"525400abcdef", ["52:54:00:ab:cd:ef"]])
def test_non_strings_refused(bad: object) -> None:
    with pytest.raises(InvalidInput, match="string"):
        normalize_mac(bad)


def test_hyphen_form() -> None:
    assert mac_hyphens("52:54:00:ab:cd:ef") == "52-54-00-ab-cd-ef"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("52-54-00", "52:54:00"),
        (" 52:54:00: ", "52:54:00"),
        ("525400", "52:54:00"),
        ("5254.00AB", "52:54:00:ab"),
        ("4:00:1", "4:00:1"),
        ("beef", "be:ef"),
        ("pc01", None),  # not hex: only a host name
        ("52::54", None),
        ("52:5:4", None),
        ("1234567890abc", None),  # longer than a MAC
        ("", None),
        ("::", None),
    ],
)
def test_mac_fragment(text: str, fragment: str | None) -> None:
    assert mac_fragment(text) == fragment
