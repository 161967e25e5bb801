"""Render boot configs and answer files from pxe_templates/ with Jinja2.

Strict: a missing variable is an error (StrictUndefined), never an empty string in a kernel
command line. Admin-supplied strings (a profile's command line) render in Jinja2's immutable
sandbox: no Python internals, no changing a list or dict (jinja2>=3.1.6, which closed the
sandbox escapes through str.format and |attr). They render into the canonical command line
of server/cmdline.py, which the boot templates write through that module's filters
(grub_args, ipxe_args, pxelinux_append).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from server import cmdline
from server.bootspec import BootSpec, Flavor
from server.errors import InvalidInput

FLAVORS: tuple[Flavor, ...] = ("ipxe", "pxelinux", "grub")
RECHECK_SECONDS = 1.0  # how soon an edited template file is picked up


class _RecheckingLoader(jinja2.FileSystemLoader):
    """Picks up an edited template within `every` seconds, without a stat() per render.

    Jinja's own check (auto_reload) stats the file each time a template is used: about 2 %
    of a boot-config request, for files that change a few times a year.
    """

    def __init__(self, path: str, every: float, clock: Callable[[], float]) -> None:
        super().__init__(path)
        self.every, self.clock = every, clock

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        source, filename, uptodate = super().get_source(environment, template)
        checked = self.clock()

        def rechecked() -> bool:
            nonlocal checked
            now = self.clock()
            if now - checked < self.every:
                return True
            checked = now
            return uptodate()

        return source, filename, rechecked


class Renderer:
    def __init__(
        self,
        templates_dir: Path,
        server_url: str,
        *,
        recheck_seconds: float = RECHECK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.server_url = server_url.rstrip("/")
        self.env = jinja2.Environment(
            loader=_RecheckingLoader(str(templates_dir), recheck_seconds, clock),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(cmdline.FILTERS)
        self.sandbox = ImmutableSandboxedEnvironment(
            undefined=jinja2.StrictUndefined, autoescape=False
        )
        self._cmdlines: dict[str, jinja2.Template] = {}
        self._cmdline_names: dict[str, frozenset[str]] = {}

    def render_boot(self, spec: BootSpec, flavor: Flavor) -> str:
        """The config `flavor`'s loader reads for `spec` (install entry or local boot)."""
        if flavor not in FLAVORS:
            raise ValueError(f"unknown boot loader flavor {flavor!r}")
        template = self.env.get_template(f"boot/{flavor}.j2")
        return template.render(spec=spec, server_url=self.server_url)

    def render_answer(self, name: str, context: Mapping[str, Any]) -> str:
        return self.env.get_template(f"answers/{name}.j2").render(**context)

    def render_cmdline(self, template: str, context: Mapping[str, Any]) -> str:
        """A profile's kernel command line with its variables filled in, in canonical form
        (cmdline.canonical): InvalidInput on `cmdline` if some boot loader could not pass it."""
        try:
            text = self._cmdline_template(template).render(**context)
        except jinja2.TemplateError as exc:
            raise InvalidInput("cmdline", f"cannot render: {exc}") from None
        return cmdline.canonical(text)

    def check_cmdline_template(self, template: str) -> None:
        """InvalidInput on `cmdline` unless `template` compiles (a profile has no client yet
        to render it for)."""
        try:
            self._cmdline_template(template)
        except jinja2.TemplateError as exc:
            raise InvalidInput("cmdline", f"cannot render: {exc}") from None

    def cmdline_names(self, template: str) -> frozenset[str]:
        """The context names `template` reads: its rendering depends on nothing else."""
        names = self._cmdline_names.get(template)
        if names is None:
            if len(self._cmdline_names) >= 256:  # as _cmdlines: few profiles, bounded churn
                self._cmdline_names.clear()
            try:
                found = jinja2.meta.find_undeclared_variables(self.sandbox.parse(template))
            except jinja2.TemplateError as exc:
                raise InvalidInput("cmdline", f"cannot render: {exc}") from None
            names = self._cmdline_names[template] = frozenset(found)
        return names

    def _cmdline_template(self, text: str) -> jinja2.Template:
        compiled = self._cmdlines.get(text)
        if compiled is None:
            if len(self._cmdlines) >= 256:  # profiles are few; this bounds hostile churn
                self._cmdlines.clear()
            compiled = self._cmdlines[text] = self.sandbox.from_string(text)
        return compiled
