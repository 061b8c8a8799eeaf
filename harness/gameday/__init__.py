"""Game days: SLOs that judge chaos scenarios, the gate that decides a release, reports."""
