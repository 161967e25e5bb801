"""The answer-file template catalog: which templates exist and which variables each one takes.

Every template `pxe_templates/answers/<name>.j2` has a sidecar `<name>.toml` that declares its
description, OS family and variables. `Catalog.check()` validates and coerces a client's merged
variables against that declaration, so a bad value is refused (HTTP 400 naming the variable)
when a profile is assigned or a reinstall is requested, never half-way through an install.

Single-line values may not contain control characters: a newline smuggled into a preseed,
kickstart or YAML line would add an instruction to the answer file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from server.errors import InvalidInput

# Names the renderer puts into every template's context; a variable may not shadow them.
RESERVED = frozenset(
    {"install_url", "server_url", "images_url", "mac", "hostname", "profile", "arch"}
)

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_VARIABLE = re.compile(r"^[a-z][a-z0-9_]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# crypt(3) hashes: MD5 ($1$), SHA-256 ($5$), SHA-512 ($6$), bcrypt ($2a/b/y$), yescrypt ($y$).
_CRYPT = re.compile(r"^\$(1|5|6|2[aby]|y|gy|7)\$[./A-Za-z0-9$=,]{8,}$")
_SSH_KEY = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp(256|384|521)"
    r"|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)"
    r" [A-Za-z0-9+/]+={0,3}( [^\"'\\`$]*)?$"
)
# Debian/RPM package names, plus kickstart's "@group", "@^environment" and "-excluded".
_PACKAGE = re.compile(r"^(-|@\^?)?[A-Za-z0-9][A-Za-z0-9.+_:~*-]*$")
_DEVICE = re.compile(r"^/dev/[A-Za-z0-9._:+/-]+$")


def _single_line(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {type(value).__name__}")
    if _CONTROL.search(value):
        raise ValueError("must be a single line without control characters")
    return value


def _string(value: object) -> str:
    return _single_line(value)


def _nonempty(value: object) -> str:
    text = _single_line(value)
    if not text:
        raise ValueError("must not be empty")
    return text


def _hostname(value: object) -> str:
    """An RFC 1123 host name: one label or a dotted FQDN, letters, digits and inner hyphens."""
    text = _single_line(value).lower().removesuffix(".")
    if not text or len(text) > 253:
        raise ValueError("must be a host name of 1 to 253 characters")
    for label in text.split("."):
        if not _LABEL.match(label):
            raise ValueError(f"not a valid RFC 1123 host name: {text[:60]!r}")
    return text


def _url(value: object) -> str:
    text = _single_line(value)
    if " " in text or '"' in text or "'" in text or "\\" in text:
        raise ValueError("must not contain spaces, quotes or backslashes")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return text


def _device(value: object) -> str:
    text = _single_line(value)
    if not _DEVICE.match(text) or "/../" in text + "/" or text.endswith("/"):
        raise ValueError("must be an absolute device path under /dev, e.g. /dev/sda")
    return text


def _password_hash(value: object) -> str:
    text = _single_line(value)
    if not _CRYPT.match(text):
        raise ValueError("must be a crypt(3) hash such as $6$salt$hash (see mkpasswd)")
    return text


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
        return False
    raise ValueError("must be a boolean (true or false)")


def _int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("must be an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,18}", value.strip()):
        return int(value)
    raise ValueError("must be an integer")


def _item(pattern: re.Pattern[str], what: str) -> Callable[[object], str]:
    def check(value: object) -> str:
        text = _single_line(value)
        if not pattern.match(text):
            raise ValueError(f"not a valid {what}: {text[:60]!r}")
        return text

    return check


SCALARS: dict[str, Callable[[object], object]] = {
    "string": _string,
    "password": _nonempty,
    "hostname": _hostname,
    "domain": _hostname,
    "url": _url,
    "device": _device,
    "password_hash": _password_hash,
    "bool": _bool,
    "int": _int,
}
ITEMS: dict[str, Callable[[object], str]] = {
    "string": _nonempty,
    "ssh_key": _item(_SSH_KEY, "SSH public key"),
    "package": _item(_PACKAGE, "package name"),
    "url": _url,
}


@dataclass(frozen=True)
class Variable:
    """One declared variable of a template, as its sidecar TOML describes it."""

    name: str
    type: str
    required: bool = False
    default: object = None
    description: str = ""
    items: str | None = None  # element type when type == "list"
    choices: tuple[object, ...] = ()
    pattern: str | None = None
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None

    def coerce(self, value: object) -> object:
        """Return `value` validated and normalised, or raise ValueError saying what is wrong."""
        if self.type == "list":
            if not isinstance(value, list | tuple):
                raise ValueError("must be a list of strings")
            check = ITEMS[self.items or "string"]
            out: list[str] = []
            for i, item in enumerate(value):
                try:
                    out.append(check(item))
                except ValueError as exc:
                    raise ValueError(f"item {i}: {exc}") from None
            return out
        result = SCALARS[self.type](value)
        if isinstance(result, str):
            if self.max_length is not None and len(result) > self.max_length:
                raise ValueError(f"must be at most {self.max_length} characters")
            if self.pattern is not None and not re.fullmatch(self.pattern, result):
                raise ValueError(f"must match {self.pattern}")
        if isinstance(result, int) and not isinstance(result, bool):
            if self.minimum is not None and result < self.minimum:
                raise ValueError(f"must be at least {self.minimum}")
            if self.maximum is not None and result > self.maximum:
                raise ValueError(f"must be at most {self.maximum}")
        if self.choices and result not in self.choices:
            raise ValueError("must be one of " + ", ".join(map(str, self.choices)))
        return result

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "type": self.type,
            "required": self.required,
            "default": self.default,
            "description": self.description,
        }
        if self.items:
            out["items"] = self.items
        if self.choices:
            out["choices"] = list(self.choices)
        return out


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    os: str
    variables: tuple[Variable, ...] = field(default_factory=tuple)


def load_sidecar(path: Path) -> Template:
    """Read and check one `<name>.toml`; a broken sidecar is a packaging bug (ValueError)."""
    name = path.stem
    with path.open("rb") as f:
        data = tomllib.load(f)
    where = f"{path}"
    if not _NAME.fullmatch(name):
        raise ValueError(f"{where}: template name must be a lower-case slug")
    variables: list[Variable] = []
    for var_name, spec in data.get("variables", {}).items():
        if not _VARIABLE.fullmatch(var_name) or var_name in RESERVED:
            raise ValueError(f"{where}: bad or reserved variable name {var_name!r}")
        kind = spec.get("type")
        if kind != "list" and kind not in SCALARS:
            raise ValueError(f"{where}: {var_name}: unknown type {kind!r}")
        if kind == "list" and spec.get("items", "string") not in ITEMS:
            raise ValueError(f"{where}: {var_name}: unknown item type {spec.get('items')!r}")
        unknown = set(spec) - {f.name for f in Variable.__dataclass_fields__.values()}
        if unknown:
            raise ValueError(f"{where}: {var_name}: unknown keys {sorted(unknown)}")
        var = Variable(
            name=var_name,
            type=kind,
            required=bool(spec.get("required", False)),
            default=spec.get("default"),
            description=spec.get("description", ""),
            items=spec.get("items", "string") if kind == "list" else None,
            choices=tuple(spec.get("choices", ())),
            pattern=spec.get("pattern"),
            max_length=spec.get("max_length"),
            minimum=spec.get("minimum"),
            maximum=spec.get("maximum"),
        )
        if var.default is not None:
            try:
                var.coerce(var.default)
            except ValueError as exc:
                raise ValueError(f"{where}: {var_name}: bad default: {exc}") from None
        variables.append(var)
    return Template(
        name=name,
        description=str(data.get("description", "")),
        os=str(data.get("os", "")),
        variables=tuple(variables),
    )


class Catalog:
    """The answer-file templates found under `templates_dir/answers/` (or `templates_dir`)."""

    def __init__(self, templates_dir: Path) -> None:
        root = Path(templates_dir)
        answers = root / "answers" if (root / "answers").is_dir() else root
        self._templates: dict[str, Template] = {}
        for sidecar in sorted(answers.glob("*.toml")):
            if not sidecar.with_suffix(".j2").is_file():
                raise ValueError(f"{sidecar}: no template {sidecar.with_suffix('.j2').name}")
            template = load_sidecar(sidecar)
            self._templates[template.name] = template

    def names(self) -> list[str]:
        """Names of all templates, sorted."""
        return sorted(self._templates)

    def exists(self, name: str) -> bool:
        return name in self._templates

    def get(self, name: str) -> Template:
        """The template called `name`, or InvalidInput on `answer_template`."""
        if not isinstance(name, str) or name not in self._templates:
            known = ", ".join(self.names())
            raise InvalidInput("answer_template", f"unknown template {name!r} (known: {known})")
        return self._templates[name]

    def describe(self) -> list[dict[str, object]]:
        """JSON-able description of every template, for the API and `templates list`."""
        return [
            {
                "name": t.name,
                "description": t.description,
                "os": t.os,
                "variables": [v.describe() for v in t.variables],
            }
            for t in (self._templates[n] for n in self.names())
        ]

    def check(self, name: str, variables: Mapping[str, object]) -> dict[str, object]:
        """Validate and coerce merged variables; fill defaults; return the declared variables.

        Variables the template does not declare are dropped (a group may carry variables for
        other operating systems); a variable named like a context key is refused.
        """
        template = self.get(name)
        for key in variables:
            if key in RESERVED:
                raise InvalidInput(f"variables.{key}", "is set by Bootfleet, not a variable")
        result: dict[str, object] = {}
        for var in template.variables:
            value = variables.get(var.name)
            if value is None:
                if var.required and var.default is None:
                    raise InvalidInput(f"variables.{var.name}", f"is required by {name}")
                value = var.default
            if value is None:
                result[var.name] = None
                continue
            try:
                result[var.name] = var.coerce(value)
            except ValueError as exc:
                raise InvalidInput(f"variables.{var.name}", str(exc)) from None
        return result
