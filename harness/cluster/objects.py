"""What `up` puts into a new cluster before any workload: read access for CoreDNS, and the
storage the cluster offers in place of a provisioner (a StorageClass with hostPath
PersistentVolumes in the state directory)."""

from __future__ import annotations

from harness.cluster.layout import ClusterLayout
from harness.cluster.pki import COREDNS_USER


def coredns_rbac() -> str:
    return f"""apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: stormproof:coredns
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: stormproof:coredns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: stormproof:coredns
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: {COREDNS_USER}
"""


def storage(layout: ClusterLayout) -> str:
    """A no-provisioner StorageClass and `layout.volumes` hostPath volumes of 1 GiB each.
    WaitForFirstConsumer binds a claim when its pod is scheduled, as a real local class does."""
    documents = [
        f"""apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: {layout.storage_class}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
"""
    ]
    for index in range(layout.volumes):
        documents.append(
            f"""apiVersion: v1
kind: PersistentVolume
metadata:
  name: {layout.storage_class}-{index}
  labels: {{app.kubernetes.io/managed-by: stormproof-cluster}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: {layout.storage_class}
  hostPath: {{path: {volume_path(layout, index)}, type: DirectoryOrCreate}}
"""
        )
    return "---\n".join(documents)


def volume_path(layout: ClusterLayout, index: int) -> str:
    return str(layout.volumes_dir / f"pv-{index}")
