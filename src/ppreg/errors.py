"""Typed exceptions. The CLI turns each into one stderr line and an exit code.

Exit codes (documented in docs/cli.md):
  2  bad input or usage (missing/corrupt file, wrong dimension, NaN, bad config)
  3  peer, dealer or network failure (unreachable, died, wrong certificate, bad frame)
  4  ppreg batch: some pairs failed (the others finished; see the summary)
  1  anything else
"""


class PpregError(Exception):
    """Base class of every error ppreg raises on purpose."""

    exit_code = 1


class InputError(PpregError):
    """A file, option or configuration value the user gave is unusable."""

    exit_code = 2


class ConfigError(InputError):
    """A YAML config or command-line setting is invalid (unknown key, bad value)."""


class EngineUnavailableError(InputError):
    """The requested privacy engine does not exist for this model (yet)."""


class PeerError(PpregError):
    """The peer or dealer is unreachable, died, timed out or misbehaved on the wire."""

    exit_code = 3


class ProtocolError(PeerError):
    """A frame was malformed, of the wrong version or of an unexpected type."""


class BatchFailedError(PpregError):
    """Some pairs of a batch failed; the others finished (each pair's error is in the summary)."""

    exit_code = 4
