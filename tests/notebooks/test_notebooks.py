"""Every notebook runs top to bottom, offline, in a Jupyter kernel of this very interpreter.

The kernel is a kernelspec written for the test into a temporary directory that
``JUPYTER_PATH`` puts first, with ``argv[0] = sys.executable``: a ``python3``
kernelspec installed in the user's home (which Jupyter would otherwise prefer)
can never make the notebooks run on another Python. ``test_kernel_is_this_interpreter``
checks that it worked.

Besides "no cell raised", the tests read the outputs a learner relies on: the
handshake notebook has one code cell per packet, each showing the packet and
the state change, and every notebook's drawings come out as PNG images.

The committed files carry no outputs (``test_committed_notebooks_are_stripped``
runs without the ``notebooks`` marker, so it runs in every suite).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))
LIVE_NOTEBOOK = "04_live.ipynb"  # starts the real responder in a namespace when run as root
CLIENT_NOTEBOOK = "05_client.ipynb"  # the live client against a kernel server in a namespace
LIVE_NOTEBOOKS = (LIVE_NOTEBOOK, CLIENT_NOTEBOOK)


def _executable(paths):
    """The notebooks as test parameters; the live one also carries the ``live`` marker, so that
    ``-m "not live"`` leaves it out with the other tests that start real processes."""
    return [
        pytest.param(p, id=p.name, marks=[pytest.mark.live] if p.name in LIVE_NOTEBOOKS else [])
        for p in paths
    ]


KERNEL_NAME = "l4kit-test-python"
CELL_TIMEOUT = 120  # seconds per cell: a hung cell fails the test instead of hanging the suite
MAX_COMMITTED_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory):
    """The name of a kernelspec that runs ``sys.executable``, visible through ``JUPYTER_PATH``."""
    root = tmp_path_factory.mktemp("jupyter")
    spec_dir = root / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"l4kit tests ({sys.executable})",
        "language": "python",
        "env": {"PYDEVD_DISABLE_FILE_VALIDATION": "1"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "JUPYTER_PATH", os.pathsep.join(filter(None, [str(root), os.environ.get("JUPYTER_PATH")]))
        )
        # Jupyter's connection files and matplotlib's font cache go under the home directory by
        # default; a read-only or missing home (CI users, nobody) must not matter.
        patch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path_factory.mktemp("jupyter-runtime")))
        patch.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
        patch.setenv("MPLCONFIGDIR", str(tmp_path_factory.mktemp("mpl")))
        yield KERNEL_NAME


_executed: dict[str, object] = {}


def _execute(path: Path, kernel_name: str):
    """Run ``path`` in a fresh kernel (once per test session) and return the executed notebook."""
    key = str(path)
    if key not in _executed:
        nb = nbformat.read(path, as_version=4)
        client = nbclient.NotebookClient(
            nb,
            kernel_name=kernel_name,
            timeout=CELL_TIMEOUT,
            allow_errors=False,
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )
        client.execute()
        _executed[key] = nb
    return _executed[key]


def _text(output) -> str:
    """Everything a code cell output says as text: streams, text/plain, and HTML markup."""
    if output.output_type == "stream":
        return output.text
    if output.output_type == "error":
        return f"{output.ename}: {output.evalue}"
    data = output.get("data", {})
    return data.get("text/plain", "") + "\n" + data.get("text/html", "")


def _cell_text(cell) -> str:
    return "\n".join(_text(o) for o in cell.get("outputs", []))


def _code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOK_FILES]
    for expected in ("01_handshake.ipynb", "02_checksum.ipynb", "03_replay.ipynb"):
        assert expected in names


# ---------------------------------------------------------------- committed files


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.name)
def test_committed_notebooks_are_stripped(path: Path):
    """Outputs are not committed: they would go stale, and they make diffs unreadable."""
    assert path.stat().st_size < MAX_COMMITTED_BYTES
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    for cell in _code_cells(nb):
        assert cell.outputs == [], f"outputs committed in {path.name}: {cell.source[:60]!r}"
        assert cell.execution_count is None, f"execution count committed in {path.name}"


# ---------------------------------------------------------------- execution


@pytest.mark.notebooks
def test_kernel_is_this_interpreter(kernel: str, tmp_path: Path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import sys\nprint(sys.executable)")]
    nbclient.NotebookClient(nb, kernel_name=kernel, timeout=CELL_TIMEOUT).execute()
    printed = nb.cells[0].outputs[0].text.strip()
    assert Path(printed).resolve() == Path(sys.executable).resolve()


@pytest.mark.notebooks
@pytest.mark.parametrize("path", _executable(NOTEBOOK_FILES))
def test_notebook_runs_top_to_bottom(kernel: str, path: Path):
    nb = _execute(path, kernel)
    for cell in _code_cells(nb):
        assert cell.execution_count is not None
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{path.name}: {_text(errors[0])}"
        stderr = "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stderr")
        assert "Traceback" not in stderr, f"{path.name}: {stderr}"


# The handshake notebook's packet cells: (step title, state change that cell must show).
HANDSHAKE_CELLS = [
    ("Step 1: SYN (client → server", ["client   CLOSED → SYN-SENT", "server   LISTEN → SYN-RECEIVED"]),
    ("Step 2: SYN-ACK (server → client", ["client   SYN-SENT → ESTABLISHED"]),
    ("Step 3: ACK (client → server", ["server   SYN-RECEIVED → ESTABLISHED"]),
    ("Step 4: data (client → server", ["server   ESTABLISHED (unchanged)", "core: ESTABLISHED → FIN-WAIT-1"]),
    ("Step 5: reply (server → client", ["client   ESTABLISHED (unchanged)", "now FIN-WAIT-1"]),
    (
        "Step 6: FIN-ACK (server → client",
        ["client   ESTABLISHED → CLOSE-WAIT", "server   ESTABLISHED → FIN-WAIT-1"],
    ),
    (
        "Step 7: FIN-ACK (client → server",
        ["client   CLOSE-WAIT → LAST-ACK", "server   FIN-WAIT-1 → TIME-WAIT"],
    ),
    ("Step 8: ACK (server → client", ["client   LAST-ACK → CLOSED"]),
    ("Step 9: closed", ["server   TIME-WAIT → CLOSED"]),
]


@pytest.mark.notebooks
def test_handshake_notebook_has_one_cell_per_packet(kernel: str):
    nb = _execute(NOTEBOOKS / "01_handshake.ipynb", kernel)
    cells = _code_cells(nb)
    found: list[int] = []
    for title, changes in HANDSHAKE_CELLS:
        holders = [i for i, cell in enumerate(cells) if title in _cell_text(cell)]
        assert holders, f"no cell shows {title!r}"
        index = holders[0]
        found.append(index)
        text = _cell_text(cells[index])
        for change in changes:
            assert change in text, f"{title!r}: {change!r} not shown"
        html = "".join(o.get("data", {}).get("text/html", "") for o in cells[index].outputs)
        assert html, f"{title!r}: no HTML rendering"
        if "closed" not in title:
            # The packet itself: the Scapy line that made it, its checksum worked out and compared.
            assert re.search(r"IP\(src='[\d.]+', dst='[\d.]+'\) / TCP\(", text), title
            assert re.search(r"checksum l4kit 0x[0-9a-f]{4}, Scapy 0x[0-9a-f]{4}: equal", text), title
    # One packet per cell, in order.
    assert found == sorted(found) and len(set(found)) == len(found)
    # Every packet's checksum also worked out stage by stage with l4kit.checksum in the notebook.
    worked = re.findall(r"Scapy's checksum: 0x[0-9a-f]{4} -> equal", "\n".join(_cell_text(c) for c in cells))
    assert len(worked) == len(HANDSHAKE_CELLS) - 1
    # The SYN cell shows Scapy's own dissection and a hex dump.
    syn_text = _cell_text(cells[found[0]])
    assert "###[ TCP ]###" in syn_text and "0000  45 00" in syn_text


@pytest.mark.notebooks
@pytest.mark.parametrize("path", _executable(NOTEBOOK_FILES))
def test_drawings_render_offline(kernel: str, path: Path):
    """Matplotlib drawings come out as PNG (Mermaid alone would not render in plain Jupyter)."""
    nb = _execute(path, kernel)
    images = [o for cell in _code_cells(nb) for o in cell.outputs if "image/png" in o.get("data", {})]
    expected = {"01_handshake.ipynb": 1, "03_replay.ipynb": 3}.get(path.name, 0)
    assert len(images) >= expected


def _live_reason() -> str | None:
    """Why the live notebook skips its live part here (its own rule, restated), or None."""
    from l4kit.live.privileges import Capability, effective_capabilities, missing_capabilities

    if os.environ.get("L4KIT_NOTEBOOK_LIVE", "1") == "0":
        return "L4KIT_NOTEBOOK_LIVE=0"
    needed = [Capability.CAP_NET_RAW, Capability.CAP_NET_ADMIN, Capability.CAP_SYS_ADMIN]
    if missing_capabilities(effective_capabilities(), needed):
        return "lacks a capability"
    for tool in ("ip", "tcpdump"):
        if shutil.which(tool) is None:
            return f"the {tool} command is missing"
    return None


@pytest.mark.notebooks
@pytest.mark.live
def test_live_notebook_answers_or_says_why_not(kernel: str):
    nb = _execute(NOTEBOOKS / LIVE_NOTEBOOK, kernel)
    text = "\n".join(_cell_text(cell) for cell in _code_cells(nb))
    reason = _live_reason()
    if reason is None:
        assert "live part: runs" in text
        assert "\nhello world\n" in text
        assert re.search(r"exit status 0; namespace l4kit-\d+ deleted: True", text)
        namespace = re.search(r"namespace (l4kit-\d+) deleted", text).group(1)
        listed = subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, check=True, timeout=10
        )
        assert namespace not in listed.stdout.split()
        assert any("image/png" in o.get("data", {}) for c in _code_cells(nb) for o in c.outputs)
    else:
        # Every cell that would touch the system says why it did nothing.
        assert text.count("skipped:") >= 5
        assert "hello world" not in text


@pytest.mark.notebooks
@pytest.mark.live
def test_client_notebook_checks_each_step_against_rfc_9293_or_says_why_not(kernel: str):
    nb = _execute(NOTEBOOKS / CLIENT_NOTEBOOK, kernel)
    text = "\n".join(_cell_text(cell) for cell in _code_cells(nb))
    reason = _live_reason()
    if reason is None and shutil.which("ss") is not None:
        assert "live part: runs" in text
        assert "DIFFERS" not in text
        for rule in (
            "matches: the answer to a SYN is SYN,ACK",
            "matches: the kernel acknowledges every octet (ACK = SEQ + LEN)",
            "matches: the kernel acknowledges the FIN (ACK = its SEQ + 1)",
            "matches: its FIN takes us to TIME-WAIT",
            "matches: the kernel's socket is CLOSED (gone from ss)",
            "matches: with SEQ=0",
        ):
            assert rule in text
        namespace = re.search(r"namespace (l4kit-nb05-\d+) deleted: True", text).group(1)
        listed = subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, check=True, timeout=10
        )
        assert namespace not in listed.stdout.split()
    else:
        assert "live part: skipped" in text and "matches:" not in text
        assert text.count("skipped:") >= 6
    assert "cleaned up" in text


@pytest.mark.notebooks
@pytest.mark.live
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
@pytest.mark.parametrize("notebook", LIVE_NOTEBOOKS)
def test_live_notebook_as_root_without_capabilities_skips_and_cleans_up(
    kernel: str, tmp_path: Path, notebook: str
):
    """Root in a container (Docker's default) has uid 0 but neither CAP_NET_ADMIN nor
    CAP_SYS_ADMIN: the notebook must say so and skip, not wait for a responder that
    cannot start, and leave no temporary directory behind."""
    jupyter_root = Path(os.environ["JUPYTER_PATH"].split(os.pathsep)[0])
    name = "l4kit-test-python-no-caps"
    spec_dir = jupyter_root / "kernels" / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    kernel_tmp = tmp_path / "kernel-tmp"
    kernel_tmp.mkdir()
    spec = {
        "argv": ["setpriv", "--bounding-set=-net_admin,-sys_admin", "--",
                 sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "l4kit tests, root without CAP_NET_ADMIN and CAP_SYS_ADMIN",
        "language": "python",
        "env": {"PYDEVD_DISABLE_FILE_VALIDATION": "1", "TMPDIR": str(kernel_tmp)},
    }  # fmt: skip
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    nb = nbformat.read(NOTEBOOKS / notebook, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name=name, timeout=CELL_TIMEOUT, allow_errors=False,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )  # fmt: skip
    client.execute()
    text = "\n".join(_cell_text(cell) for cell in _code_cells(nb))
    assert (
        "live part: skipped: root here lacks CAP_NET_ADMIN (firewall rule, sysctls), "
        "CAP_SYS_ADMIN (network namespace)"
    ) in text
    assert "hello world" not in text and "matches:" not in text
    assert re.search(r"cleaned up( \S+: deleted)?\n", text)
    assert list(kernel_tmp.iterdir()) == []  # its temporary directory is gone
