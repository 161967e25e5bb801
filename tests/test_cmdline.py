"""server/cmdline.py: one kernel command line, three boot loaders, the same bytes.

Each input renders through the real Renderer (render_cmdline, then render_boot for all three
flavours). What each loader hands the kernel is then worked out from the exact text: GRUB by
its own parser (grub-emu prints the words of the `linux` line, grub-script-check checks the
whole config) and the rebuild of grub-core/lib/cmdline.c; iPXE by src/core/exec.c's
split_command and command_terminator; pxelinux by readconfig.c's APPEND and record(). All
three must equal the BootSpec's command line, and the kernel's next_arg (lib/cmdline.c) must
find in it the parameters that were meant.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from server import cmdline
from server.bootspec import BootSpec, Flavor, ImageRef
from server.config import DEFAULT_TEMPLATES_DIR
from server.errors import InvalidInput
from server.render import Renderer

URL = "http://198.18.0.1:8080"
INSTALL_URL = f"{URL}/api/v1/installs/{'t' * 43}"
KERNEL = ImageRef(url=f"{URL}/images/debian/linux", path="debian/linux")
INITRD = ImageRef(url=f"{URL}/images/debian/initrd.gz", path="debian/initrd.gz")
Params = list[tuple[str, str | None]]

# (profile command line, variables, the parameters the kernel must see before bootfleet.install)
PASSES: dict[str, tuple[str, dict[str, object], Params]] = {
    "semicolon (Ubuntu's NoCloud seed)": (
        "autoinstall ds=nocloud-net;s={{ seed }}/",
        {"seed": "http://198.18.0.1/seed"},
        [("autoinstall", None), ("ds", "nocloud-net;s=http://198.18.0.1/seed/")],
    ),
    "dollar (a crypt hash)": ("pw=$6$salt$hash x=$a", {}, [("pw", "$6$salt$hash"), ("x", "$a")]),
    "quoted value with spaces": (
        'msg="{{ m }}" b',
        {"m": "hello big world"},
        [("msg", "hello big world"), ("b", None)],
    ),
    "whole parameter quoted": ('"msg=hello world"', {}, [("msg", "hello world")]),
    "quotes around a value without spaces": ('a="b" c=""', {}, [("a", "b"), ("c", "")]),
    "hash inside a word": ("x=a#b y=#", {}, [("x", "a#b"), ("y", "#")]),
    "&& and || inside a word": ("x=a&&b y=c||d", {}, [("x", "a&&b"), ("y", "c||d")]),
    "pipe, ampersand, redirections": ("x=a|b&c<d>e(f)", {}, [("x", "a|b&c<d>e(f)")]),
    "braces": ("x={a} y=}{", {}, [("x", "{a}"), ("y", "}{")]),
    "glob characters": ("x=*? y=[ab] !", {}, [("x", "*?"), ("y", "[ab]"), ("!", None)]),
    "GRUB reserved words": (
        "if then fi in do",
        {},
        [(w, None) for w in ("if", "then", "fi", "in", "do")],
    ),
    "blanks and tabs between parameters": (" a \t b  ", {}, [("a", None), ("b", None)]),
    "nothing but bootfleet.install": ("", {}, []),
}

# (profile command line, variables, what the refusal says)
REFUSED: dict[str, tuple[str, dict[str, object], str]] = {
    "iPXE setting expansion": ("x=${net0/mac}", {}, "iPXE expands"),
    "expansion through a variable": ("x={{ v }}", {"v": "${x}"}, "iPXE expands"),
    "single quote": ("x='a'", {}, "GRUB adds a backslash"),
    "backslash": ("x=a\\b", {}, "GRUB adds a backslash"),
    "word starting with #": ("a #b", {}, "comment"),
    "# after a blank inside quotes": ('x="a #b"', {}, "comment"),
    "the word &&": ("a && b", {}, "end of the command"),
    "the word ||": ("a || b", {}, "end of the command"),
    "the word ;": ("a ; b", {}, "end of the command"),
    "non-ASCII": ("x={{ v }}", {"v": "café"}, "not ASCII"),
    "non-breaking space": ("x=a\u00a0b", {}, "not ASCII"),
    "escape character": ("x=a\x1bb", {}, "control character"),
    "line break through a variable": ("x={{ v }}", {"v": "a\nb"}, "line break"),
    "unclosed quote": ('x="a b', {}, "not closed"),
    "quote inside a word": ('x=a"b c"d', {}, "may only enclose"),
    "two blanks inside quotes": ('x="a  b"', {}, "two blanks"),
    "tab inside quotes": ('x="a\tb"', {}, "tab inside quotes"),
    "initrd= of its own": ("initrd=evil.img", {}, "initrd list"),
    "very long": ("x={{ v }}", {"v": "a" * 2000}, "over the kernel's 2047"),
}


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(DEFAULT_TEMPLATES_DIR, URL)


def spec_for(renderer: Renderer, template: str, variables: dict[str, object]) -> BootSpec:
    """The BootSpec the booter builds (Booter._installer_spec), from the real renderer."""
    line = renderer.render_cmdline(template, {**variables, "hostname": "pc01"})
    spec = BootSpec(
        action="install",
        mac="52:54:00:12:34:56",
        hostname="pc01",
        kernel=KERNEL,
        initrds=(INITRD,),
        cmdline=cmdline.join(line, f"bootfleet.install={INSTALL_URL}"),
        install_url=INSTALL_URL,
    )
    cmdline.check_fits(spec)
    return spec


@pytest.mark.parametrize("case", sorted(PASSES))
def test_every_loader_hands_the_kernel_the_same_bytes(
    renderer: Renderer, tmp_path: Path, case: str
) -> None:
    template, variables, params = PASSES[case]
    spec = spec_for(renderer, template, variables)
    assert kernel_args(spec.cmdline) == [*params, ("bootfleet.install", INSTALL_URL)]
    grub = renderer.render_boot(spec, "grub")
    assert grub_cmdline(grub, tmp_path) == f"BOOT_IMAGE=/debian/linux {spec.cmdline}"
    assert ipxe_cmdline(renderer.render_boot(spec, "ipxe")) == f"initrd=initrd.gz {spec.cmdline}"
    assert pxelinux_cmdline(renderer.render_boot(spec, "pxelinux")) == (
        f"BOOT_IMAGE=debian/linux {spec.cmdline} initrd=debian/initrd.gz"
    )


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_some_loader_cannot_pass_is_refused(renderer: Renderer, case: str) -> None:
    template, variables, match = REFUSED[case]
    with pytest.raises(InvalidInput, match=match) as caught:
        spec_for(renderer, template, variables)
    assert caught.value.field == "cmdline"


def test_canonical_form_puts_quotes_where_grub_puts_them() -> None:
    assert cmdline.canonical('a  x="b c"\t"d=e f" g="h"') == 'a "x=b c" "d=e f" g=h'
    assert cmdline.canonical(cmdline.canonical('x="b c"')) == '"x=b c"'


def test_the_longest_line_that_fits(renderer: Renderer, tmp_path: Path) -> None:
    """2047 bytes with the longest loader prefix (pxelinux's BOOT_IMAGE= and initrd=)."""
    room = cmdline.MAX_BYTES - cmdline.loader_additions(KERNEL, (INITRD,))
    filler = room - len(f"x= bootfleet.install={INSTALL_URL}")
    spec = spec_for(renderer, "x={{ v }}", {"v": "a" * filler})
    whole = pxelinux_cmdline(renderer.render_boot(spec, "pxelinux"))
    assert len(whole) == cmdline.MAX_BYTES
    assert grub_cmdline(renderer.render_boot(spec, "grub"), tmp_path).endswith(spec.cmdline)
    with pytest.raises(InvalidInput, match="2048 bytes"):
        spec_for(renderer, "x={{ v }}", {"v": "a" * (filler + 1)})


@pytest.mark.parametrize("flavor", ["grub", "ipxe", "pxelinux"])
def test_templates_refuse_a_line_not_in_canonical_form(renderer: Renderer, flavor: Flavor) -> None:
    """A BootSpec built around canonical() never reaches a loader half-quoted."""
    spec = BootSpec(action="install", mac="52:54:00:12:34:56", kernel=KERNEL, cmdline="a ${x}")
    with pytest.raises(InvalidInput, match="iPXE expands"):
        renderer.render_boot(spec, flavor)


@pytest.mark.parametrize(
    ("path", "word"),
    [("/debian/linux", "/debian/linux"), ("/a b/c", "'/a b/c'"), ("/it's", "'/it'\\''s'")],
)
def test_grub_word(path: str, word: str) -> None:
    assert cmdline.grub_word(path) == word


def test_a_kernel_url_is_one_grub_word(renderer: Renderer, tmp_path: Path) -> None:
    url = "http://mirror.example/k?a=1&b=2;c"
    spec = BootSpec(
        action="install", mac="52:54:00:12:34:56", kernel=ImageRef(url=url), cmdline="quiet"
    )
    assert grub_words(renderer.render_boot(spec, "grub"), tmp_path) == [url, "quiet"]


# --- the loaders, from their sources ----------------------------------------------------


def kernel_args(line: str) -> Params:
    """lib/cmdline.c next_arg over the whole line: (parameter, value or None)."""
    out: Params = []
    rest = line.lstrip(" ")
    while rest:
        quoted = rest.startswith('"')
        args = rest[1:] if quoted else rest
        i, equals, in_quote = 0, 0, quoted
        while i < len(args) and (in_quote or args[i] != " "):
            if not equals and args[i] == "=":
                equals = i
            in_quote ^= args[i] == '"'
            i += 1
        end = i - 1 if quoted and args[i - 1] == '"' else i
        if not equals:
            out.append((args[:end], None))
        else:
            start = equals + 1
            if args[start : start + 1] == '"':
                start += 1
                end = i - 1 if args[i - 1] == '"' else end
            out.append((args[:equals], args[start:end]))
        rest = args[i:].lstrip(" ")
    return out


def grub_cmdline(config: str, tmp_path: Path) -> str:
    """BOOT_IMAGE= and the `linux` words as grub-core/lib/cmdline.c joins them: an argument
    with a space in double quotes, a backslash before each \\ ' and "."""
    words = grub_words(config, tmp_path)
    rebuilt = [re.sub(r"([\\'\"])", r"\\\1", w) for w in words]
    return "BOOT_IMAGE=" + " ".join(
        f'"{r}"' if " " in w else r for w, r in zip(words, rebuilt, strict=True)
    )


def grub_words(config: str, tmp_path: Path) -> list[str]:
    """The words of the `linux` line, as GRUB's own parser makes them (grub-emu)."""
    for tool in ("grub-script-check", "grub-emu"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian packages grub-common, grub-emu)")
    (tmp_path / "boot.cfg").write_text(config)
    check = subprocess.run(["grub-script-check", str(tmp_path / "boot.cfg")], capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    line = next(x.strip() for x in config.splitlines() if x.strip().startswith("linux "))
    (tmp_path / "grub.cfg").write_text(
        "terminfo -g 4000x25 console\n"  # no wrapping at 80 columns
        'function show {\n  for a in "$@"; do echo "[$a]"; done\n}\n'
        f"echo BEGIN\nshow {line.removeprefix('linux ')}\necho END\nhalt\n"
    )
    done = subprocess.run(
        ["grub-emu", "-d", str(tmp_path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
    )
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", done.stdout.decode()).replace("\r", "")
    shown = text.split("\nBEGIN\n", 1)[1].split("\nEND\n", 1)[0].split("\n")
    assert all(x.startswith("[") and x.endswith("]") for x in shown), shown
    return [x[1:-1] for x in shown]


def ipxe_cmdline(script: str) -> str:
    """The `kernel` line's image arguments: split at blanks (split_command), up to the first
    terminator (command_terminator), after the image URI, joined by one space (concat_args)."""
    line = next(x for x in script.splitlines() if x.startswith("kernel "))
    tokens = re.split(r"[ \t\n\v\f\r]+", line)
    end = next(i for i, t in enumerate(tokens) if t.startswith("#") or t in ("||", "&&", ";"))
    assert tokens[end:] == ["||", "goto", "failed"], tokens[end:]  # nothing ended it early
    assert all("${" not in t for t in tokens[:end])  # expand_settings leaves it alone
    assert not tokens[1].startswith("-")  # getopt stops at the URI
    return " ".join(tokens[2:end])


def pxelinux_cmdline(config: str) -> str:
    """What pxelinux passes: BOOT_IMAGE=<KERNEL>, APPEND's rest of the line, ` initrd=`
    (record() and load_linux in com32/elflink/ldlinux); the initrd is the first initrd=."""
    fields = {}
    for raw in config.splitlines():
        assert len(raw) < 4096  # readconfig.c MAX_LINE
        keyword, _, rest = raw.strip().partition(" ")
        fields[keyword.upper()] = rest.lstrip(" \t")
    append = "" if fields["APPEND"] == "-" else fields["APPEND"]
    whole = f"BOOT_IMAGE={fields['KERNEL']} {append} initrd={fields['INITRD']}"
    assert whole.index("initrd=") == whole.rindex("initrd=")
    return whole
