"""A one-node Kubernetes cluster on this machine: layout and addresses (layout), configuration
files (configs), processes in start order (components), host changes and their undoing (host),
PKI (pki), the objects a new cluster gets (objects), and the whole (cluster)."""
