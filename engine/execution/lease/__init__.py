"""Leader lease for an active/standby execution pair.

Two instances of the execution service run; one leads (sends orders), the other stands by. The
leader holds a lease it renews; if it dies, freezes or loses the lease backend, its lease runs
out and the standby takes over within the TTL plus one acquire interval. Every acquisition
yields a fencing epoch larger than any before it; the new leader claims it in the journal
(`Journal.claim`), which then refuses writes from older epochs, so a deposed leader that wakes
up can neither write nor send (orders are journaled before they are sent).

    base.py        LeaseBackend (the contract every backend keeps), the callback types
    redis.py       RedisLease: a key with a PX expiry and a persistent epoch counter
    kubernetes.py  KubernetesLease: a coordination.k8s.io/v1 Lease
    factory.py     lease_backend(config): the backend a LeaseConfig asks for
    elector.py     LeaderElector: drives a backend with the pure engine.core.lease_term.LeaseTerm

What the service does with an election (claim, recover, lead, step down) is decided by the pure
`engine.core.leadership.Leadership`.
"""
