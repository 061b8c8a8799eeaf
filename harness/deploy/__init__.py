"""The Kubernetes deployment's generated parts (deploy/kubernetes/, docs/kubernetes.md): the
engine config and the Toxiproxy links rendered from the engine's own config structs
(`config`), the local overlay's secrets (`secrets`), and rendering and validating the
manifests offline against a real kube-apiserver (`manifests`)."""
