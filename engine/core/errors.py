"""Errors of the engine, one tree.

StormproofError
├── ConfigError                 bad or missing configuration (one-line message)
├── AlgoParamsError             an execution algo's params are missing, unknown or invalid
├── OrderStateError             an illegal order state transition
├── BookError
│   ├── BookGapError            a diff does not continue the book (update-id gap)
│   └── CrossedBookError        best bid >= best ask after an update
├── BusError
│   ├── BusUnavailableError     the bus cannot be reached (retryable)
│   └── BusPermissionError      the bus refused this process's user a command or key, or its
│                               credentials (Redis ACL: not retryable, a configuration fault)
├── FencingError                a deposed leader tried to write or send
├── LeaseError                  the leader-lease backend failed or is unreachable (retryable)
├── JournalUnavailableError     the journal database cannot be reached (retry; reconnects)
└── VenueError                  a venue call failed; see engine.execution.errors.classify
    ├── RetryableVenueError     nothing happened at the venue; safe to retry
    ├── FatalVenueError         the venue refused; retrying cannot help
    │   └── VenueOrderNotFound  the venue does not know the order
    └── AmbiguousVenueError     outcome unknown; reconcile by clientOrderId, never resend
"""

from __future__ import annotations


class StormproofError(Exception):
    """Root of every error raised on purpose by stormproof."""


class ConfigError(StormproofError):
    """The configuration is invalid; the message is one line a user can act on."""


class AlgoParamsError(StormproofError):
    """An intent asked for an execution algo with parameters it cannot work with; the message is
    one line naming the parameter."""


class OrderStateError(StormproofError):
    """An order was asked to move to a state it cannot reach from its current one."""


class BookError(StormproofError):
    """The local order book cannot be trusted any more."""


class BookGapError(BookError):
    """A diff skipped update ids: the book must be resynchronised from a snapshot."""


class CrossedBookError(BookError):
    """Best bid is at or above best ask: the book must be resynchronised."""


class BusError(StormproofError):
    """The message bus failed."""


class BusUnavailableError(BusError):
    """The bus cannot be reached right now; the caller may retry."""


class BusPermissionError(BusError):
    """The bus refused this process's user (wrong credentials, or a command or key its ACL does
    not allow): retrying cannot help, the deployment is misconfigured or the action forbidden."""


class FencingError(StormproofError):
    """A writer whose leadership epoch is stale tried to write or send."""


class LeaseError(StormproofError):
    """The leader-lease backend (Redis, Kubernetes API) failed or cannot be reached.

    Retryable: the elector logs it and tries again; leadership ends when the local term does.
    """


class JournalUnavailableError(StormproofError):
    """The journal database cannot be reached; the next call reconnects.

    A write that failed this way may or may not have been committed: read it back first.
    """


class VenueError(StormproofError):
    """A call to a venue failed; subclasses say what the caller may do next."""


class RetryableVenueError(VenueError):
    """The request certainly had no effect at the venue; it may be retried."""


class FatalVenueError(VenueError):
    """The venue refused the request; retrying cannot succeed."""


class VenueOrderNotFound(FatalVenueError):
    """The venue has no order with that id (never placed, or long gone)."""


class AmbiguousVenueError(VenueError):
    """The request may or may not have taken effect; reconcile before doing anything else."""
