"""Packages and data for the wheel; everything else is in pyproject.toml.

The answer-file and boot templates live at the top of the checkout (pxe_templates/), where
admins and the docs look for them; the wheel carries them inside the package, as
server/pxe_templates/, where server.config finds them with importlib.resources. A
declarative `packages.find` cannot add a package from outside server/, hence this file.
"""

from setuptools import find_namespace_packages, setup

TEMPLATES = "server.pxe_templates"

setup(
    packages=[*find_namespace_packages(include=["server*"], exclude=["*__pycache__"]), TEMPLATES],
    package_dir={TEMPLATES: "pxe_templates"},
    package_data={
        TEMPLATES: ["answers/*", "boot/*"],
        "server.web": ["templates/web/*.html", "static/*"],
    },
)
