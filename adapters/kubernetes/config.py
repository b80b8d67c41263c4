"""Settings of a Kubernetes Source (everything in ``spec`` besides ``type``, ``sync``, ...).

```yaml
spec:
  type: kubernetes
  auth:                                     # one of three:
    kubeconfig: ~/.kube/config              #   a kubeconfig file (default: $KUBECONFIG or
    context: prod-eu                        #   ~/.kube/config) and a context in it
  # auth: {inCluster: true}                 #   the pod's service account
  # auth:                                   #   a bearer token and the cluster's CA
  #   server: https://10.0.0.1:6443
  #   tokenFrom: {env: ACCORD_SECRET_K8S_TOKEN}
  #   caFile: /etc/accord/prod-ca.crt
  namespaces: [etl, reports]                # default: every namespace
  labelSelector: "team in (data,ml)"        # CronJobs selected (default: all)
  ownerLabel: team                          # label naming a CronJob's owner
  consoleUrl: "https://console.example.com/k8s/ns/{namespace}/cronjobs/{name}"
  runUrl: "https://console.example.com/k8s/ns/{namespace}/jobs/{name}"
  timezone: UTC                             # kube-controller-manager's zone (CronJobs
                                            # without spec.timeZone)
```
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from gateway.model import SecretRef
from gateway.model.resources import Duration

__all__ = ["InClusterAuth", "KubeconfigAuth", "KubernetesConfig", "TokenAuth"]

_URL_FIELDS = ("{namespace}", "{name}", "{uid}")


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class KubeconfigAuth(_Settings):
    """A kubeconfig file and a context in it (what ``kubectl`` uses)."""

    kubeconfig: str | None = Field(
        default=None, description="path of the kubeconfig (default: $KUBECONFIG, ~/.kube/config)"
    )
    context: str | None = Field(default=None, description="context (default: current-context)")


class InClusterAuth(_Settings):
    """The service account of the pod Accord runs in."""

    in_cluster: Literal[True] = Field(alias="inCluster")


class TokenAuth(_Settings):
    """An API server URL, a bearer token (by reference) and the cluster's CA."""

    server: str = Field(description="the API server, e.g. https://10.0.0.1:6443")
    token_from: SecretRef = Field(
        validation_alias=AliasChoices("tokenFrom", "token"), alias="tokenFrom"
    )
    ca_file: str | None = Field(default=None, alias="caFile", description="PEM file of the CA")
    insecure_skip_tls_verify: bool = Field(default=False, alias="insecureSkipTlsVerify")

    @field_validator("server")
    @classmethod
    def _http_url(cls, v: str) -> str:
        v = v.strip().rstrip("/")
        if not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v


class KubernetesConfig(_Settings):
    auth: TokenAuth | InClusterAuth | KubeconfigAuth = Field(default_factory=KubeconfigAuth)
    namespaces: tuple[str, ...] = Field(
        default=(), description="namespaces to govern (default: all; needs cluster-wide list)"
    )
    label_selector: str | None = Field(
        default=None, alias="labelSelector", description="CronJobs selected by their labels"
    )
    owner_label: str = Field(
        default="accord.dev/owner",
        alias="ownerLabel",
        description="the CronJob label (or annotation) naming its owner",
    )
    console_url: str | None = Field(
        default=None,
        alias="consoleUrl",
        description="deep link of a CronJob; {namespace}, {name} and {uid} are filled in",
    )
    run_url: str | None = Field(
        default=None,
        alias="runUrl",
        description="deep link of a Job (run); {namespace}, {name} and {uid} are filled in",
    )
    timezone: str = Field(
        default="UTC",
        description="kube-controller-manager's time zone, for CronJobs without spec.timeZone",
    )
    resync_every: Duration = Field(
        default=timedelta(minutes=10),
        alias="resyncEvery",
        description="full re-list of CronJobs and Jobs as a safety net beside the watches",
    )
    watch_timeout: Duration = Field(
        default=timedelta(minutes=5),
        alias="watchTimeout",
        description="a watch request ends after this (then resumes from its resourceVersion)",
    )
    page_size: int = Field(default=500, alias="pageSize", ge=1, le=5000)
    max_concurrent_requests: int = Field(
        default=4,
        alias="maxConcurrentRequests",
        ge=1,
        le=32,
        description="API requests (not watches) this source runs at once",
    )
    cancel_propagation: Literal["Background", "Foreground"] = Field(
        default="Background",
        alias="cancelPropagation",
        description="how a cancelled Job's pods are deleted",
    )
    missed_grace: Duration = Field(
        default=timedelta(minutes=5),
        alias="missedGrace",
        description="a scheduled time with no Job after this long is a missed run "
        "(startingDeadlineSeconds wins when set)",
    )
    pod_reads_per_sync: int = Field(
        default=20,
        alias="podReadsPerSync",
        ge=0,
        le=1000,
        description="failed Jobs whose pods are read per sync (for OOMKilled, image errors)",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name like Europe/Berlin)"
            ) from None
        return v

    @field_validator("console_url", "run_url")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            v.format(namespace="ns", name="n", uid="u")
        except (KeyError, IndexError, ValueError):
            raise ValueError(
                f"a link template may only use {', '.join(_URL_FIELDS)} (got {v!r})"
            ) from None
        return v

    @field_validator("namespaces")
    @classmethod
    def _names(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for ns in v:
            if not ns or len(ns) > 63 or not all(c.isalnum() or c == "-" for c in ns):
                raise ValueError(f"{ns!r} is not a namespace name")
        return tuple(dict.fromkeys(v))

    @field_validator("watch_timeout")
    @classmethod
    def _watch(cls, v: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= v <= timedelta(hours=1):
            raise ValueError("must be between 1s and 1h")
        return v
