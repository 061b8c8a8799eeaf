"""Errors of the harness, one tree.

HarnessError                 a one-line, actionable message for the CLI
├── ToolMissingError         a required binary (redis-server, toxiproxy-server) is absent
├── StackError               the local stack could not be started, reached or stopped
│   └── StackNotRunningError no stack in the run directory
├── ToxiproxyError           the Toxiproxy API refused or did not answer
├── GameDayConfigError       a game-day file or SLO definition is invalid (file, scenario, key)
├── GameDayReportError       a file is not a readable stormproof game-day report
├── ImageBuildError          an image could not be assembled, written or imported (harness.image)
└── ManifestError            a Kubernetes manifest that does not render, or that the API
                             server refuses
"""

from __future__ import annotations


class HarnessError(Exception):
    pass


class ToolMissingError(HarnessError):
    pass


class StackError(HarnessError):
    pass


class StackNotRunningError(StackError):
    pass


class ToxiproxyError(HarnessError):
    pass


class GameDayConfigError(HarnessError):
    pass


class GameDayReportError(HarnessError):
    pass


class ImageBuildError(HarnessError):
    pass


class ManifestError(HarnessError):
    pass
