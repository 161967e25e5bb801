"""Kernel command lines that mean the same through GRUB, iPXE and pxelinux.

A profile's command line renders to one canonical text: the exact bytes every loader hands
the kernel after its own prefix. The boot templates write it through the filters below,
which quote what a loader's syntax would otherwise eat; what some loader cannot pass through
unchanged is refused (InvalidInput on `cmdline`) when a profile is assigned, not found by a
machine at boot. The rules, and where they come from:

- Kernel (lib/cmdline.c next_arg): parameters end at blanks outside double quotes; a quote may
  wrap a whole parameter ("a=b c") or its value (a="b c"), and cannot itself be escaped. Its
  ctype counts byte 0xA0 as a space, a byte UTF-8 uses inside characters: ASCII only. x86 and
  arm64 keep COMMAND_LINE_SIZE - 1 = 2047 bytes.
- GRUB (grub-core/script/yylex.l; manual, "Shell-like scripting"): `linux` takes shell-like
  words; { } | & $ ; < > and blanks end a word, # starts a comment, * ? [ glob (regexp
  module); a single-quoted word is literal. grub-core/lib/cmdline.c then rebuilds the command
  line: an argument holding a space is wrapped in double quotes, each \\ ' " gets a backslash,
  and arguments past the kernel's limit are dropped. So ' and \\ never arrive unchanged, nor a
  " anywhere but around a whole parameter with a space: the canonical form puts them there.
- iPXE (src/core/exec.c, src/core/settings.c): a line splits at blanks and the kernel's
  arguments are joined again with one space; a word starting with # ends the line, the words
  || && ; end the command, and ${...} expands a setting until none is left, with no escape.
- pxelinux (com32/elflink/ldlinux/readconfig.c): APPEND is the rest of the line, verbatim
  (`APPEND -` means none); it adds " initrd=<INITRD>" and then looks for the first "initrd="
  anywhere in the line, so the profile's own line must not contain one.
"""

from __future__ import annotations

import functools
import re

from server.bootspec import BootSpec, ImageRef
from server.errors import InvalidInput

MAX_BYTES = 2047  # the kernel's COMMAND_LINE_SIZE (2048 on x86 and arm64) less the NUL

_GRUB_PLAIN = re.compile(r"[A-Za-z0-9_./:=,+@%^~-]+")
# Reserved words (the manual's list; ! [[ ]] { } are quoted as non-plain anyway).
_GRUB_RESERVED = frozenset(
    {
        *("case", "do", "done", "elif", "else", "esac", "fi", "for", "function", "if", "in"),
        *("menuentry", "select", "then", "time", "until", "while"),
    }
)
_QUOTED = re.compile(r'"([^"]+)"')  # "a=b c"
_QUOTED_VALUE = re.compile(r'([^"=]+)="([^"]*)"')  # a="b c"
_IPXE_TERMINATORS = ("||", "&&", ";")
_PARAM = re.compile(r'(?:[^ \t"]+|"[^"]*")+')
_NOT_ASCII = re.compile(r"[^ -~]")
_NOT_ASCII_OR_TAB = re.compile(r"[^\t -~]")


def canonical(text: str) -> str:
    """`text` (a rendered profile command line) as the kernel will see it from every loader:
    parameters one space apart, double quotes only around a whole parameter with a space."""
    if "\n" in text or "\r" in text:
        raise _refused("a variable put a line break into the kernel command line")
    if bad := _NOT_ASCII_OR_TAB.search(text):
        raise _refused(_why_not_ascii(bad[0]))
    line = " ".join(_canonical_param(p) for p in kernel_params(text))
    problem = refusal(line)
    if problem:
        raise _refused(problem)
    return line


def kernel_params(text: str) -> list[str]:
    """`text` split as the kernel's next_arg splits it: at blanks outside double quotes (each
    quote toggles, so with an even number of them they pair up left to right)."""
    if text.count('"') % 2:
        unclosed = text[text.rindex('"') :][:40]
        raise _refused(f"{unclosed!r}: a double quote is not closed")
    return _PARAM.findall(text)


def refusal(line: str) -> str | None:
    """Why some loader cannot pass canonical `line` to the kernel unchanged, or None."""
    if bad := _NOT_ASCII.search(line):
        return _why_not_ascii(bad[0])
    if "'" in line or "\\" in line:
        return "GRUB adds a backslash before every ' and \\ it passes: leave them out"
    if "${" in line:
        return "iPXE expands ${...} and has no way to escape it: leave out '${'"
    if "initrd=" in line:
        return "set initrds in the profile's initrd list, not initrd= (pxelinux looks for it)"
    if line == "-":
        return "pxelinux reads 'APPEND -' as no command line at all"
    for param in kernel_params(line):
        if '"' in param and not (_QUOTED.fullmatch(param) and " " in param):
            return f"{param!r}: not in canonical form"
    for word in line.split(" ") if line else ():
        if not word:
            return "two blanks in a row inside quotes: iPXE passes one"
        if word.startswith("#"):
            return f"{word!r}: iPXE reads a word starting with '#' as a comment"
        if word in _IPXE_TERMINATORS:
            return f"{word!r}: iPXE reads this word as the end of the command"
    return None


def join(line: str, param: str) -> str:
    """Canonical `line` with one more parameter (checked on its own) at the end."""
    problem = refusal(param)
    if problem:
        raise _refused(problem)
    return f"{line} {param}" if line else param


def check_fits(spec: BootSpec) -> None:
    """Refuse a command line the kernel would cut, counting what each loader adds to it."""
    total = len(spec.cmdline) + loader_additions(spec.kernel, spec.initrds)
    if total > MAX_BYTES:
        raise _refused(
            f"{total} bytes with what the boot loaders add, over the kernel's {MAX_BYTES}"
            " (GRUB would drop the parameters that do not fit, iPXE cut the line)"
        )


@functools.lru_cache(maxsize=256)
def loader_additions(kernel: ImageRef | None, initrds: tuple[ImageRef, ...]) -> int:
    """The most any loader puts beside the command line, as the boot templates write it:
    GRUB and pxelinux `BOOT_IMAGE=<kernel> `, pxelinux ` initrd=<a>,<b>`, iPXE
    `initrd=<name> ` for each initrd."""
    if kernel is None:
        return 0
    grub = len(f"BOOT_IMAGE={f'/{kernel.path}' if kernel.path else kernel.url} ")
    pxelinux = len(f"BOOT_IMAGE={kernel.path or kernel.url} ")
    if initrds:
        pxelinux += len(" initrd=" + ",".join(i.path or i.url for i in initrds))
    ipxe = sum(len(f"initrd={i.name} ") for i in initrds)
    return max(grub, pxelinux, ipxe)


# --- the filters the boot templates use ---------------------------------------------------


def grub_args(line: str) -> str:
    """GRUB words for canonical `line`: GRUB's rebuilt command line is `line` again."""
    ready(line)
    return " ".join(grub_word(p[1:-1] if p.startswith('"') else p) for p in kernel_params(line))


def grub_word(text: str) -> str:
    """One GRUB word that parses to exactly `text` (a path, or one kernel parameter)."""
    if _GRUB_PLAIN.fullmatch(text) and text not in _GRUB_RESERVED:
        return text
    return "'" + text.replace("'", "'\\''") + "'"


def ready(line: str) -> str:
    """`line` unchanged if every loader passes it as it is (iPXE's `kernel` arguments,
    pxelinux's APPEND), else InvalidInput: a BootSpec not built by canonical() never
    reaches a loader half-quoted."""
    problem = refusal(line)
    if problem:
        raise _refused(problem)
    return line


FILTERS = {
    "grub_args": grub_args,
    "grub_word": grub_word,
    "ipxe_args": ready,
    "pxelinux_append": ready,
}


def _canonical_param(param: str) -> str:
    if '"' not in param:
        return param
    if match := _QUOTED.fullmatch(param):
        body = match[1]
    elif match := _QUOTED_VALUE.fullmatch(param):
        body = f"{match[1]}={match[2]}"
    else:
        raise _refused(
            f'{param!r}: a double quote may only enclose a whole parameter ("a=b c")'
            ' or its value (a="b c")'
        )
    if "\t" in body:
        raise _refused(f"{param!r}: a tab inside quotes; iPXE passes a space")
    return f'"{body}"' if " " in body else body


def _why_not_ascii(ch: str) -> str:
    if ord(ch) < 32 or ord(ch) == 127:
        return f"control character U+{ord(ch):04X} in the kernel command line"
    return (
        f"{ch!r} is not ASCII: the kernel reads byte 0xA0, which UTF-8 uses inside characters,"
        " as a blank"
    )


def _refused(why: str) -> InvalidInput:
    return InvalidInput("cmdline", why)
