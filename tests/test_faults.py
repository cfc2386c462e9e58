"""Faults with real processes on 127.0.0.1: a peer or the dealer killed mid-run.

party2 (``ppreg serve``) or the dealer runs under tests/faultinject.py, which SIGKILLs it
at a chosen protocol message. The kill points are drawn (seeded) from the messages of a
reference run, two in level set-up and three in iterations for each of the two
processes: 10 kills in all. party1, the survivor, must exit 3 with one ``ppreg: error:``
line within 30 s of the kill and leave no output file.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ppreg.transport.keys import make_keys
from test_three_process import stop
from test_transport_tls import certs  # noqa: F401 - the module-scoped certificates fixture

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
INJECT = [sys.executable, str(ROOT / "tests" / "faultinject.py")]
PPREG = [sys.executable, "-m", "ppreg.cli"]
SURVIVOR_SECONDS = 30
KILLS_PER_PROCESS = {"setup": 2, "iterations": 3}
SEED = 10
REGISTRATION = ["--pet", "mpc", "--levels", "8x4", "--smoothing", "2x1", "--iterations", "10x10",
                "--convergence", "1e-12", "--quiet"]


def start_server(command: list[str], timeout: float = 60) -> tuple[subprocess.Popen, int]:
    """Start a server process and wait (bounded) for its 'port N' line on stderr."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if "port " in line:
            return process, int(line.rsplit("port ", 1)[1].split()[0])
        if process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"server did not start: {process.stderr.read()}")


class Deployment:
    """A dealer and a party2, either of which may be set to die at a message."""

    def __init__(self, certs: Path, logs: Path, kill: dict[str, int]):
        self.logs = logs
        dealer_args = ["dealer", "--listen", "127.0.0.1:0", "--certs", str(certs)]
        self.dealer, self.dealer_port = start_server(self._command("dealer", kill.get("dealer", 0), dealer_args))
        party2_args = ["serve", str(DATA / "r16.png"), "--listen", "127.0.0.1:0", "--certs", str(certs),
                       "--dealer", f"127.0.0.1:{self.dealer_port}"]
        self.party2, self.party2_port = start_server(self._command("party2", kill.get("party2", 0), party2_args))
        self.processes = {"dealer": self.dealer, "party2": self.party2}

    def _command(self, name: str, kill_at: int, args: list[str]) -> list[str]:
        return [*INJECT, str(kill_at), str(self.logs / f"{name}.log"), "--", *args]

    def party1_args(self, certs: Path, prefix: Path) -> list[str]:
        return ["affine", str(DATA / "r64.png"), "--peer", f"127.0.0.1:{self.party2_port}",
                "--dealer", f"127.0.0.1:{self.dealer_port}", "--certs", str(certs), "-o", str(prefix), *REGISTRATION]

    def stop(self) -> None:
        stop(self.party2, self.dealer)


def read_events(log: Path) -> list[tuple[int, str, str]]:
    """(index, phase, what) per message of a reference log."""
    events = []
    for line in log.read_text().splitlines():
        index, phase, *what = line.split()
        events.append((int(index), phase, " ".join(what)))
    return events


@pytest.fixture(scope="module")
def kill_points(certs, tmp_path_factory):
    """A complete reference run, then the seeded kill points per process."""
    logs = tmp_path_factory.mktemp("reference")
    deployment = Deployment(certs, logs, {})
    try:
        result = subprocess.run(PPREG + deployment.party1_args(certs, logs / "ok_"), capture_output=True, text=True,
                                timeout=120)
    finally:
        deployment.stop()
    assert result.returncode == 0, result.stderr
    rng = np.random.default_rng(SEED)
    points = {}
    for name in ("party2", "dealer"):
        events = read_events(logs / f"{name}.log")
        chosen = []
        for phase, count in KILLS_PER_PROCESS.items():
            # The last messages (bye) are left out: a kill after them is not mid-run.
            candidates = [index for index, event_phase, what in events[:-2] if event_phase == phase]
            chosen += sorted(rng.choice(candidates, size=count, replace=False).tolist())
        points[name] = [(index, events[index - 1][1], events[index - 1][2]) for index in chosen]
    return points


def run_and_kill(certs: Path, workdir: Path, target: str, kill_at: int) -> dict:
    workdir.mkdir(parents=True)
    deployment = Deployment(certs, workdir, {target: kill_at})
    prefix = workdir / "out" / "run_"
    party1 = subprocess.Popen(PPREG + deployment.party1_args(certs, prefix), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        victim = deployment.processes[target]
        try:
            victim.wait(timeout=60)
        except subprocess.TimeoutExpired:
            party1.kill()
            raise AssertionError(f"{target} never reached message {kill_at}; party1: {party1.communicate()[1]}")
        killed_at = time.monotonic()
        _, stderr = party1.communicate(timeout=SURVIVOR_SECONDS + 5)
        survivor_seconds = time.monotonic() - killed_at
        other = "dealer" if target == "party2" else "party2"
        return {"victim_code": victim.returncode, "party1_code": party1.returncode, "stderr": stderr,
                "seconds": survivor_seconds, "other_alive": deployment.processes[other].poll() is None,
                "outputs": sorted(p.name for p in prefix.parent.glob("*")) if prefix.parent.exists() else [],
                "log": (workdir / f"{target}.log").read_text()}
    finally:
        stop(party1)
        deployment.stop()


@pytest.mark.parametrize("target", ["party2", "dealer"])
def test_survivor_exits_3_quickly_without_outputs(certs, kill_points, tmp_path, target):
    points = kill_points[target]
    assert {phase for _, phase, _ in points} == {"setup", "iterations"}
    seconds = []
    for number, (kill_at, phase, what) in enumerate(points):
        outcome = run_and_kill(certs, tmp_path / f"kill{number}", target, kill_at)
        where = f"{target} killed at message {kill_at} ({phase}: {what})"
        assert outcome["victim_code"] == -9, where  # it really died there, by SIGKILL
        assert outcome["log"].startswith(f"{kill_at} "), where
        assert outcome["party1_code"] == 3, f"{where}: {outcome['stderr']}"
        lines = [line for line in outcome["stderr"].splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("ppreg: error:"), f"{where}: {outcome['stderr']}"
        assert "party2" in lines[0] or "dealer" in lines[0], f"{where}: {lines[0]}"
        assert "Traceback" not in outcome["stderr"]
        assert outcome["seconds"] < SURVIVOR_SECONDS, f"{where}: party1 took {outcome['seconds']:.1f} s"
        assert outcome["outputs"] == [], f"{where}: partial outputs {outcome['outputs']}"
        assert outcome["other_alive"], f"{where}: the other server died too"
        seconds.append(outcome["seconds"])
    print(f"\n{target} killed at {[point[:2] for point in points]}: party1 exited 3 after "
          f"{min(seconds):.1f}–{max(seconds):.1f} s")  # shown with pytest -s


# --- a running `ppreg serve` against malformed input --------------------------------------

FUZZ_FRAMES = 1000
RAW_GARBAGE = 100
FUZZ_SEED = 1000
REPLY_SECONDS = 5.0


def start_logged_server(command: list[str], log: Path, timeout: float = 60) -> tuple[subprocess.Popen, int]:
    """Start a server whose output goes to ``log`` (a pipe would fill up and block it)."""
    with log.open("w") as stream:
        process = subprocess.Popen(command, stdout=stream, stderr=stream, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        if "port " in text:
            return process, int(text.split("port ", 1)[1].split()[0])
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"server did not start: {log.read_text()}")


@pytest.fixture()
def served(certs, tmp_path):
    """A dealer and a party2 that accepts mpc and clear, with stderr in files."""
    dealer, dealer_port = start_logged_server(
        PPREG + ["dealer", "--listen", "127.0.0.1:0", "--certs", str(certs)], tmp_path / "dealer.err")
    party2, party2_port = start_logged_server(
        PPREG + ["serve", str(DATA / "r16.png"), "--listen", "127.0.0.1:0", "--certs", str(certs),
                 "--dealer", f"127.0.0.1:{dealer_port}", "--pets", "mpc,clear"], tmp_path / "party2.err")
    yield {"party2": party2, "port": party2_port, "dealer_port": dealer_port, "log": tmp_path / "party2.err"}
    stop(party2, dealer)


def tls_session(port: int, certs: Path, name: str = "party1"):
    """A TLS connection to party2 as ``name``, admitted (its welcome frame read)."""
    import socket

    from ppreg.transport.tcp import SocketLink
    from ppreg.transport.tls import Identity, client_context

    raw = socket.create_connection(("127.0.0.1", port), timeout=REPLY_SECONDS)
    tls = client_context(Identity.load(certs, name)).wrap_socket(raw)
    decode_frames(SocketLink(tls, "party2").recv_frame(REPLY_SECONDS))
    return tls


def send_and_collect(tls, data: bytes) -> list:
    """Send bytes, half-close, read party2's answer until it closes; its messages."""
    import socket

    with tls:
        try:
            tls.sendall(data)
        except OSError:
            pass  # party2 already refused and closed: its answer is still readable
        socket.socket.shutdown(tls, socket.SHUT_WR)  # TCP FIN, keeping the TLS state for reading
        received = b""
        while True:
            try:
                chunk = tls.recv(65536)
            except TimeoutError:
                raise AssertionError(f"party2 did not close the connection within {REPLY_SECONDS} s") from None
            except OSError:  # closed without a TLS close_notify, or reset: closed all the same
                chunk = b""
            if not chunk:
                return decode_frames(received)
            received += chunk


def decode_frames(data: bytes) -> list:
    from ppreg.transport.wire import decode, PREFIX, PREFIX_BYTES

    messages = []
    while len(data) >= PREFIX_BYTES:
        end = PREFIX_BYTES + PREFIX.unpack(data[:PREFIX_BYTES])[0]
        messages.append(decode(data[:end]))
        data = data[end:]
    return messages


def valid_frames() -> list[bytes]:
    """What a real party1 sends for a clear session: hello, a level, a stray product."""
    from ppreg import __version__
    from ppreg.core.transforms import AffineModel
    from ppreg.secure.session import PROTOCOL
    from ppreg.similarity.base import LevelRequest
    from ppreg.transport.wire import Message, encode

    model = AffineModel("affine", 2, np.array([127.5, 127.5]), 128.0)
    hello = {"pet": "clear", "dim": 2, "model": "affine", "session": "fuzz", "protocol": PROTOCOL,
             "version": __version__, "reveal_noise": 0.0}
    level = {"index": 0, "request": LevelRequest("ssd", 8, 2.0, model).to_meta()}
    return [encode(Message("hello", hello)), encode(Message("level", level, {"samples": np.arange(50, dtype=np.int64)})),
            encode(Message("mpc_product", {"level": 0, "counter": 0}, {"masked_features": np.zeros((50, 1), np.uint64)}))]


BAD_VALUES = [None, -1, 0, 10**12, 1e300, -1e300, "", "x" * 300, [], {}, [1, 2, 3], True, 3.5, "mpc", {"a": [None]}]


def bad_meta_frame(frame: bytes, rng: np.random.Generator) -> bytes:
    """A well-formed frame whose meta has one (possibly nested) value wrong or missing."""
    from ppreg.transport.wire import Message, decode, encode

    message = decode(frame)
    meta = json_copy(message.meta)
    target = meta
    while True:
        key = rng.choice(sorted(target))
        if isinstance(target[key], dict) and target[key] and rng.integers(2):
            target = target[key]
            continue
        break
    if rng.integers(4) == 0:
        del target[key]
    else:
        target[key] = BAD_VALUES[rng.integers(len(BAD_VALUES))]
    arrays = dict(message.arrays)
    if "samples" in arrays and rng.integers(3) == 0:
        arrays["samples"] = [np.array([-1, 5]), np.arange(10**6, 10**6 + 5), np.zeros((2, 2), np.int64),
                             np.array([0.5, 1.5]), np.array([], np.int64)][rng.integers(5)]
    return encode(Message(message.kind, meta, arrays))


def json_copy(value):
    import json

    return json.loads(json.dumps(value))


def fuzz_case(rng: np.random.Generator) -> tuple[bytes, str]:
    """One session's bytes: a corrupted or bogus frame after 0–2 valid ones."""
    from test_transport_wire import mutate

    frames = valid_frames()
    position = int(rng.integers(len(frames)))
    prefix = b"".join(frames[:position])
    if rng.integers(2):
        return prefix + mutate(frames[position], rng), "bytes"
    return prefix + bad_meta_frame(frames[position], rng), "meta"


def test_fuzzed_frames_are_refused_and_serve_keeps_serving(certs, served, tmp_path):
    import socket

    rng = np.random.default_rng(FUZZ_SEED)
    kinds, error_frames = {"bytes": 0, "meta": 0}, 0
    for _ in range(FUZZ_FRAMES):
        data, kind = fuzz_case(rng)
        kinds[kind] += 1
        replies = send_and_collect(tls_session(served["port"], certs), data)
        error_frames += sum(message.kind == "error" for message in replies)
    for _ in range(RAW_GARBAGE):  # before any TLS: random bytes, sometimes shaped like a TLS record
        garbage = rng.integers(0, 256, size=int(rng.integers(1, 3000))).astype(np.uint8).tobytes()
        if rng.integers(2):
            garbage = b"\x16\x03\x01" + garbage
        with socket.create_connection(("127.0.0.1", served["port"]), timeout=REPLY_SECONDS) as raw:
            try:
                raw.sendall(garbage)
                raw.shutdown(socket.SHUT_WR)
                while raw.recv(65536):
                    pass
            except OSError:
                pass  # party2 reset the connection: refused, as it should
    result = subprocess.run(PPREG + ["affine", str(DATA / "r64.png"), "--peer", f"127.0.0.1:{served['port']}",
                                     "--dealer", f"127.0.0.1:{served['dealer_port']}", "--certs", str(certs),
                                     "-o", str(tmp_path / "after_"), *REGISTRATION], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert served["party2"].poll() is None
    log = served["log"].read_text()
    failed = [line for line in log.splitlines() if "failed:" in line]
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]
    assert len(failed) == FUZZ_FRAMES + RAW_GARBAGE, log[-3000:]
    assert all(line.startswith("ppreg party2: session ") for line in failed)
    assert error_frames >= FUZZ_FRAMES // 2, f"only {error_frames} refusals named a reason"
    print(f"\nfuzz: {kinds} corrupted sessions and {RAW_GARBAGE} non-TLS ones, all refused; "
          f"{error_frames} error frames named the reason")  # shown with pytest -s
    assert '"session": %d' % (FUZZ_FRAMES + RAW_GARBAGE + 1) in log  # the real registration, right after


# --- refusals: protocol versions and certificates -------------------------------------------

def frame_with_wire_version(frame: bytes, version: int) -> bytes:
    from ppreg.transport.wire import PREFIX_BYTES

    return frame[:PREFIX_BYTES] + bytes([version]) + frame[PREFIX_BYTES + 1:]


def hello_frame(**changes) -> bytes:
    from ppreg.transport.wire import Message, decode, encode

    hello = decode(valid_frames()[0])
    return encode(Message("hello", {**hello.meta, **changes}))


def expired_copy(certs: Path, directory: Path, name: str) -> Path:
    """The deployment's CA and other parties, with ``name``'s certificate expired yesterday."""
    import datetime as dt
    import shutil

    directory.mkdir()
    for path in certs.iterdir():
        if not path.name.startswith(name + "."):
            shutil.copy(path, directory / path.name)
    now = dt.datetime.now(dt.timezone.utc)
    make_keys(directory, names=(name,), not_valid_before=now - dt.timedelta(days=3),
              not_valid_after=now - dt.timedelta(days=1))
    return directory


def party1_run(certs: Path, port: int, prefix: Path, pet: str = "clear", dealer_port: int | None = None):
    dealer = [] if dealer_port is None else ["--dealer", f"127.0.0.1:{dealer_port}"]
    return subprocess.run(PPREG + ["affine", str(DATA / "r64.png"), "--peer", f"127.0.0.1:{port}", *dealer,
                                   "--certs", str(certs), "-o", str(prefix), "--pet", pet, "--levels", "8",
                                   "--smoothing", "2", "--iterations", "3", "--quiet"],
                          capture_output=True, text=True, timeout=60)


def assert_refused(result, *fragments: str) -> str:
    line = result.stderr.strip()
    assert result.returncode == 3, result.stderr
    assert len(line.splitlines()) == 1 and line.startswith("ppreg: error:"), result.stderr
    for fragment in fragments:
        assert fragment in line, line
    return line


def test_serve_refuses_other_versions_and_bad_certificates(certs, served, tmp_path):
    from ppreg.transport.wire import WIRE_VERSION

    wire = send_and_collect(tls_session(served["port"], certs), frame_with_wire_version(hello_frame(), WIRE_VERSION + 1))
    assert [m.meta["message"] for m in wire if m.kind == "error"] == [
        f"wire version mismatch: peer sent version {WIRE_VERSION + 1}, this ppreg speaks version {WIRE_VERSION}"]
    application = send_and_collect(tls_session(served["port"], certs), hello_frame(protocol=2))
    assert [m.meta["message"] for m in application if m.kind == "error"] == ["party1 speaks protocol 2, party2 speaks 1"]

    foreign = tmp_path / "foreign"
    make_keys(foreign)
    assert_refused(party1_run(foreign, served["port"], tmp_path / "a_"), "party2 at 127.0.0.1",
                   "certificate verify failed")
    expired = expired_copy(certs, tmp_path / "expired", "party1")
    assert_refused(party1_run(expired, served["port"], tmp_path / "b_"), "party2 at 127.0.0.1", "certificate expired")
    assert not list(tmp_path.glob("a_*")) and not list(tmp_path.glob("b_*"))
    log = served["log"].read_text()
    assert "TLS handshake failed: tlsv1 alert unknown ca" in log  # party1 refused party2's certificate
    assert "certificate verify failed: certificate has expired" in log
    assert party1_run(certs, served["port"], tmp_path / "ok_").returncode == 0  # still serving


def fake_party2(certs: Path, reply) -> tuple:
    """A party2 in a thread that answers party1's hello with ``reply(hello)`` (raw frame bytes)."""
    import threading

    from ppreg.errors import PeerError
    from ppreg.transport.tls import Identity, Listener

    listener = Listener("127.0.0.1:0", Identity.load(certs, "party2"), timeout=10)

    def serve_once():
        try:
            channel, _ = listener.accept({"party1"}, timeout=30)
            hello = channel.recv("hello")
            channel._link.send_frame(reply(hello))
            channel.recv()  # until party1 hangs up
        except PeerError:
            pass

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    return listener, thread


@pytest.mark.parametrize("reply, fragments", [
    (lambda hello: frame_with_wire_version(hello_frame(), 3),
     ["wire version mismatch: peer sent version 3, this ppreg speaks version 2"]),
    (lambda hello: hello_frame(protocol=2), ["party2 speaks protocol 2, we speak 1"]),
], ids=["wire-version", "app-protocol"])
def test_party1_refuses_a_party2_of_another_version(certs, tmp_path, reply, fragments):
    listener, thread = fake_party2(certs, reply)
    try:
        assert_refused(party1_run(certs, listener.port, tmp_path / "v_"), *fragments)
    finally:
        thread.join(timeout=15)
        listener.close()
    assert not list(tmp_path.glob("v_*"))


def test_party1_refuses_an_expired_party2_certificate(certs, tmp_path):
    expired = expired_copy(certs, tmp_path / "expired", "party2")
    listener, thread = fake_party2(expired, lambda hello: b"")
    try:
        assert_refused(party1_run(certs, listener.port, tmp_path / "e_"), "party2 at 127.0.0.1",
                       "certificate verify failed: certificate has expired")
    finally:
        thread.join(timeout=15)
        listener.close()


def test_a_session_that_hits_a_bug_does_not_stop_the_server():
    from ppreg.secure.runtime import _serve_sessions

    class Listener:
        def accept(self, allowed):
            from ppreg.transport.channel import local_pair

            return local_pair("party2", "party1")[0], "party1"

    outcomes = iter([KeyError("surprise"), {"pet": "clear"}])

    def serve_one(channel):
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    seen = []
    assert _serve_sessions(Listener(), serve_one, lambda n, report, error: seen.append((n, report, str(error))), 2) == 2
    assert seen == [(1, None, "internal error: KeyError: 'surprise'"), (2, {"pet": "clear"}, "None")]
